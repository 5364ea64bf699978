package kafka_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

var quiet = slog.New(slog.NewTextHandler(logOut(), &slog.HandlerOptions{Level: slog.LevelDebug}))

func logOut() io.Writer {
	if os.Getenv("PURISTA_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// env is one isolated system on a broker: its own topic prefix.
type env struct {
	brokers []string
	prefix  string
	// options are given to every client and server of the env after its
	// own.
	options []kafka.Option
}

var envSeq atomic.Int64

func newEnv(t testing.TB, brokers []string) *env {
	return &env{brokers: brokers, prefix: fmt.Sprintf("t%d-%d.", os.Getpid(), envSeq.Add(1))}
}

// contracts hands a test's clients and servers the contracts of every
// service the tests serve.
var contracts = kafka.WithContracts(conformance.Contracts()...)

func (e *env) common() []kafka.Option {
	return append([]kafka.Option{kafka.WithTopicPrefix(e.prefix), kafka.WithEnsureTopics(3, 1), kafka.WithLogger(quiet), contracts}, e.options...)
}

func (e *env) Client(t testing.TB, o conformance.Options) grpc.ClientConnInterface {
	opts := []kafka.ClientOption{kafka.WithUnaryClientInterceptors(o.ClientInterceptors...)}
	for _, c := range e.common() {
		opts = append(opts, c)
	}
	if o.DefaultTimeout > 0 {
		opts = append(opts, kafka.WithDefaultTimeout(o.DefaultTimeout))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.Dial(ctx, e.brokers, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

type server struct {
	*kafka.Server
	done chan error
	once sync.Once
}

func (s *server) Start(t testing.TB) {
	s.done = make(chan error, 1)
	go func() { s.done <- s.Serve(context.Background()) }()
}

func (s *server) Stop() {
	s.once.Do(func() {
		s.GracefulStop()
		if s.done != nil {
			if err := <-s.done; err != nil {
				panic(fmt.Sprintf("Serve: %v", err))
			}
		}
	})
}

func (e *env) Server(t testing.TB, o conformance.Options) conformance.Server {
	opts := []kafka.ServerOption{kafka.WithUnaryServerInterceptors(o.ServerInterceptors...), kafka.WithGroupTimings(250*time.Millisecond, 6*time.Second)}
	for _, c := range e.common() {
		opts = append(opts, c)
	}
	srv, err := kafka.NewServer(e.brokers, opts...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return &server{Server: srv}
}

func TestConformance(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		conformance.Run(t, func(t testing.TB) conformance.Env { return newEnv(t, brokers) })
	})
}
