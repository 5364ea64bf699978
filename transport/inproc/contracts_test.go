package inproc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/transport/inproc"
)

// A channel serves and calls only the services it has contracts for:
// registering another is an error, calling another fails at once, instead
// of running without the contract's timeouts, keys and events.
func TestContractsAreRequired(t *testing.T) {
	ch := inproc.New()
	t.Cleanup(func() { _ = ch.Close() })
	testingv1.RegisterEchoServiceServer(ch, &conformance.EchoServer{Name: "no contract"})
	if err := ch.Err(); err == nil || !strings.Contains(err.Error(), "EchoService_PuristaService") || !strings.Contains(err.Error(), "inproc.WithContracts") {
		t.Errorf("Err() = %v, want the missing contract and the option to pass it", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := testingv1.NewEchoServiceClient(ch).Echo(ctx, &testingv1.EchoRequest{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "inproc.WithContracts") {
		t.Errorf("a call without a contract = %v, want FAILED_PRECONDITION naming inproc.WithContracts", err)
	}

	// Two different contracts of one service cannot both be followed.
	other := *testingv1.EchoService_PuristaService
	bad := inproc.New(inproc.WithContracts(testingv1.EchoService_PuristaService, &other))
	t.Cleanup(func() { _ = bad.Close() })
	if err := bad.Err(); err == nil || !strings.Contains(err.Error(), "two different contracts") {
		t.Errorf("Err() with two contracts of one service = %v", err)
	}
}
