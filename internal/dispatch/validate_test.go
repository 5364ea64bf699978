package dispatch_test

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/dispatch"
)

func TestValidate(t *testing.T) {
	if err := dispatch.Validate(&testingv1.EchoRequest{Key: "k"}); err != nil {
		t.Fatalf("a valid request: %v", err)
	}
	if err := dispatch.Validate("not a message"); err != nil {
		t.Fatalf("a non-message: %v", err)
	}
	err := dispatch.Validate(&testingv1.EchoRequest{Key: strings.Repeat("k", 65)})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "purista.testing.v1.EchoRequest") || !strings.Contains(st.Message(), "key: ") {
		t.Fatalf("an invalid request: %v, want INVALID_ARGUMENT naming the message and the field", err)
	}
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		br, _ = d.(*errdetails.BadRequest)
	}
	want := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
		Field: "key", Reason: "string.max_len", Description: br.GetFieldViolations()[0].GetDescription(),
	}}}
	if !proto.Equal(br, want) || br.GetFieldViolations()[0].GetDescription() == "" {
		t.Fatalf("detail %v, want %v with a description", br, want)
	}
}

// The cost every request pays: a message with rules (EchoRequest's key)
// and one without (CountRequest).
func BenchmarkValidate(b *testing.B) {
	for _, bc := range []struct {
		name string
		msg  proto.Message
	}{
		{"rules", &testingv1.EchoRequest{Message: "hello", Key: "user-42", Payload: make([]byte, 256)}},
		{"none", &testingv1.CountRequest{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := dispatch.Validate(bc.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
