package inproc_test

import (
	"testing"

	"google.golang.org/grpc"

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
