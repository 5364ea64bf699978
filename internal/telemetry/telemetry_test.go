package telemetry

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestCodeName(t *testing.T) {
	for code, want := range map[codes.Code]string{
		codes.OK: "OK", codes.NotFound: "NOT_FOUND", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
		codes.Unauthenticated: "UNAUTHENTICATED", codes.FailedPrecondition: "FAILED_PRECONDITION", 99: "CODE_99",
	} {
		if got := CodeName(code); got != want {
			t.Errorf("CodeName(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	s := m.Server("/a.B/C")
	s.Start()
	s.Waited(time.Time{})
	s.Done(time.Time{}, nil)
	s.Retry()
	s.DeadLetter()
	m.Event("/a.B/C", "e").Count(codes.OK)
}
