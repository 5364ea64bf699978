package inproc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/transport/inproc"
)

type env struct{ ch *inproc.Channel }

type server struct{ *inproc.Server }

func (server) Start(testing.TB) {}
func (server) Stop()            {}

func options(o conformance.Options) []inproc.Option {
	opts := []inproc.Option{
		inproc.WithContracts(conformance.Contracts()...),
		inproc.WithUnaryClientInterceptors(o.ClientInterceptors...),
		inproc.WithUnaryServerInterceptors(o.ServerInterceptors...),
	}
	if o.DefaultTimeout > 0 {
		opts = append(opts, inproc.WithDefaultTimeout(o.DefaultTimeout))
	}
	return opts
}

func (e *env) Client(_ testing.TB, o conformance.Options) grpc.ClientConnInterface {
	return e.ch.NewClient(options(o)...)
}

func (e *env) Server(_ testing.TB, o conformance.Options) conformance.Server {
	return server{e.ch.NewServer(options(o)...)}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t testing.TB) conformance.Env {
		ch := inproc.New()
		t.Cleanup(func() { _ = ch.Close() })
		return &env{ch: ch}
	})
}

// An invalid inproc.WithRetry fails the client's calls with a message
// naming the option.
func TestInvalidRetryPolicy(t *testing.T) {
	ch := inproc.New(inproc.WithContracts(conformance.Contracts()...))
	defer func() { _ = ch.Close() }()
	cl := ch.NewClient(inproc.WithContracts(conformance.Contracts()...), inproc.WithRetry(0, time.Millisecond, time.Second))
	_, err := testingv1.NewEchoServiceClient(cl).Echo(context.Background(), &testingv1.EchoRequest{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "inproc.WithRetry") {
		t.Errorf("call through a client with WithRetry(0, ...) = %v, want FAILED_PRECONDITION naming inproc.WithRetry", err)
	}
}
