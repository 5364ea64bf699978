// Package conformance is the one test suite every purista transport passes:
// the in-process transport, Kafka on the embedded broker and Kafka on a real
// Apache Kafka broker run the same tests through the same Echo service.
package conformance

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
)

// EchoServer implements the test service and records what it executed.
type EchoServer struct {
	testingv1.UnimplementedEchoServiceServer
	// Name identifies the instance in responses.
	Name string

	count    atomic.Int64
	calls    atomic.Int64
	mu       sync.Mutex
	messages []string
	lastMD   metadata.MD
}

// Calls returns how many handler invocations the server made.
func (s *EchoServer) Calls() int64 { return s.calls.Load() }

// Messages returns the Echo messages the server executed, in order.
func (s *EchoServer) Messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.messages...)
}

// LastMetadata returns the incoming metadata of the last Echo call.
func (s *EchoServer) LastMetadata() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastMD
}

func (s *EchoServer) Echo(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	s.calls.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.messages = append(s.messages, req.GetMessage())
	s.lastMD = md
	s.mu.Unlock()
	hdr, trl := metadata.MD{}, metadata.MD{}
	for k, v := range md {
		if strings.HasPrefix(k, "echo-") {
			hdr.Append(k, v...)
			trl.Append(k+"-trailer", v...)
		}
	}
	if len(hdr) > 0 {
		if err := grpc.SetHeader(ctx, hdr); err != nil {
			return nil, err
		}
		if err := grpc.SetTrailer(ctx, trl); err != nil {
			return nil, err
		}
	}
	return &testingv1.EchoResponse{Message: req.GetMessage(), Payload: req.GetPayload(), Server: s.Name}, nil
}

func (s *EchoServer) Fail(ctx context.Context, req *testingv1.FailRequest) (*testingv1.FailResponse, error) {
	s.calls.Add(1)
	st := status.New(codes.Code(req.GetCode()), req.GetMessage())
	if req.GetReason() != "" {
		withDetails, err := st.WithDetails(&errdetails.ErrorInfo{Reason: req.GetReason(), Domain: "purista.test", Metadata: map[string]string{"k": "v"}})
		if err != nil {
			return nil, err
		}
		st = withDetails
	}
	return nil, st.Err()
}

func (s *EchoServer) Sleep(ctx context.Context, req *testingv1.SleepRequest) (*testingv1.SleepResponse, error) {
	s.calls.Add(1)
	resp := &testingv1.SleepResponse{Server: s.Name}
	if dl, ok := ctx.Deadline(); ok {
		resp.DeadlineLeft = durationpb.New(time.Until(dl))
	}
	select {
	case <-time.After(req.GetDuration().AsDuration()):
		return resp, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (s *EchoServer) Panic(context.Context, *testingv1.PanicRequest) (*testingv1.PanicResponse, error) {
	s.calls.Add(1)
	panic("conformance: deliberate panic")
}

func (s *EchoServer) Count(context.Context, *testingv1.CountRequest) (*testingv1.CountResponse, error) {
	s.calls.Add(1)
	return &testingv1.CountResponse{Count: s.count.Add(1), Server: s.Name}, nil
}
