package plaingrpc_test

import (
	"log/slog"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/purista-go/purista"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/transport/plaingrpc"
)

// env is one system on loopback: one listener, taken when the env is made
// so that clients can dial it before the server serves (the suite's
// ServerStartsLater), and one grpc.Server on it.
type env struct {
	ln     net.Listener
	mu     sync.Mutex
	served bool
}

func newEnv(t testing.TB) conformance.Env {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	return e
}

func options(o conformance.Options, contracts ...*purista.Service) []plaingrpc.Option {
	opts := []plaingrpc.Option{
		plaingrpc.WithContracts(contracts...),
		plaingrpc.WithLogger(slog.New(slog.DiscardHandler)),
	}
	if o.DefaultTimeout > 0 {
		opts = append(opts, plaingrpc.WithDefaultTimeout(o.DefaultTimeout))
	}
	return opts
}

func (e *env) Client(t testing.TB, o conformance.Options) grpc.ClientConnInterface {
	dopts, err := plaingrpc.DialOptions(options(o, conformance.Contracts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	dopts = append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(o.ClientInterceptors...))
	conn, err := grpc.NewClient(e.ln.Addr().String(), dopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

type server struct {
	*grpc.Server
	ln   net.Listener
	done chan struct{}
	once sync.Once
}

func (s *server) Start(testing.TB) {
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		_ = s.Serve(s.ln)
	}()
}

func (s *server) Stop() {
	s.once.Do(func() {
		s.GracefulStop()
		if s.done != nil {
			<-s.done
		}
	})
}

func (e *env) Server(t testing.TB, o conformance.Options) conformance.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.served {
		t.Fatal("a plain gRPC env serves one server on its one address")
	}
	e.served = true
	// The contract of what it serves: others would ask for a publisher for
	// the events they emit, which the suite does not use.
	sopts, err := plaingrpc.ServerOptions(options(o, testingv1.EchoService_PuristaService)...)
	if err != nil {
		t.Fatal(err)
	}
	return &server{Server: grpc.NewServer(append(sopts, grpc.ChainUnaryInterceptor(o.ServerInterceptors...))...), ln: e.ln}
}

// TestConformance runs the suite of the Kafka and in-process transports
// over a real grpc.Server and grpc.ClientConn on loopback.
func TestConformance(t *testing.T) {
	conformance.Run(t, newEnv)
}
