package kafka

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/dispatch"
)

// A stored reply answers as the first run did: body, header and trailer
// metadata, and an error's code, message and details.
func TestStoredReplyRoundTrip(t *testing.T) {
	hdr, trl := metadata.Pairs("x-h", "1"), metadata.Pairs("x-t", "2")
	value, headers := storedRecord("/s/M", "k", "id", dispatch.Result{Response: &testingv1.EchoResponse{Message: "hi"}, Header: hdr, Trailer: trl})
	got := storedReply{value: value, headers: headers}.result()
	var resp testingv1.EchoResponse
	if got.Err != nil || proto.Unmarshal(got.Response.(storedBody), &resp) != nil || resp.GetMessage() != "hi" {
		t.Fatalf("stored OK reply = %+v, want the response", got)
	}
	if got.Header.Get("x-h")[0] != "1" || got.Trailer.Get("x-t")[0] != "2" {
		t.Errorf("stored metadata = %v, %v", got.Header, got.Trailer)
	}
	// A stored reply stored again (read by one instance, answered from
	// memory) keeps its body.
	again, _ := storedRecord("/s/M", "k", "id", got)
	if string(again) != string(value) {
		t.Errorf("stored body changed when stored again")
	}

	st, _ := status.New(codes.FailedPrecondition, "no stock").WithDetails(&errdetails.ErrorInfo{Reason: "OUT_OF_STOCK"})
	value, headers = storedRecord("/s/M", "k", "id", dispatch.Result{Err: st.Err()})
	if len(value) != 0 {
		t.Errorf("an error's stored value has %d bytes, want none", len(value))
	}
	got = storedReply{value: value, headers: headers}.result()
	gs := status.Convert(got.Err)
	if gs.Code() != codes.FailedPrecondition || gs.Message() != "no stock" || len(gs.Details()) != 1 {
		t.Errorf("stored error = %v (details %v), want FAILED_PRECONDITION with its detail", gs, gs.Details())
	}
}
