package gateway_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// kafkaEnv is one isolated system on a broker: its own topic prefix.
type kafkaEnv struct {
	brokers []string
	prefix  string
}

var kafkaEnvSeq atomic.Int64

func newKafkaEnv(brokers []string) *kafkaEnv {
	return &kafkaEnv{brokers: brokers, prefix: fmt.Sprintf("gw%d-%d.", os.Getpid(), kafkaEnvSeq.Add(1))}
}

func (e *kafkaEnv) common() []kafka.Option {
	return []kafka.Option{kafka.WithTopicPrefix(e.prefix), kafka.WithEnsureTopics(3, 1), kafka.WithLogger(quietLogger()),
		kafka.WithContracts(conformance.Contracts()...)}
}

func (e *kafkaEnv) dial(t testing.TB) *kafka.ClientConn {
	t.Helper()
	var opts []kafka.ClientOption
	for _, o := range e.common() {
		opts = append(opts, o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.Dial(ctx, e.brokers, opts...)
	if err != nil {
		t.Fatalf("kafka.Dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (e *kafkaEnv) Client(t testing.TB, _ conformance.Options) grpc.ClientConnInterface {
	return e.dial(t)
}

type kafkaServer struct {
	*kafka.Server
	done chan error
}

func (s *kafkaServer) Start(testing.TB) {
	s.done = make(chan error, 1)
	go func() { s.done <- s.Serve(context.Background()) }()
}

func (s *kafkaServer) Stop() {
	s.GracefulStop()
	if s.done != nil {
		<-s.done
	}
}

func (e *kafkaEnv) Server(t testing.TB, _ conformance.Options) conformance.Server {
	t.Helper()
	opts := []kafka.ServerOption{kafka.WithGroupTimings(250*time.Millisecond, 6*time.Second)}
	for _, o := range e.common() {
		opts = append(opts, o)
	}
	srv, err := kafka.NewServer(e.brokers, opts...)
	if err != nil {
		t.Fatalf("kafka.NewServer: %v", err)
	}
	return &kafkaServer{Server: srv}
}

func TestStartOrderKafka(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		t.Run("ServiceStartsLater", func(t *testing.T) { testServiceStartsLater(t, newKafkaEnv(brokers)) })
		t.Run("ServiceNeverStarts", func(t *testing.T) { testServiceNeverStarts(t, newKafkaEnv(brokers)) })
	})
}

func TestReadyzKafka(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		env := newKafkaEnv(brokers)
		url, _ := startGateway(t, env.dial(t))
		r := do(t, "GET", url+"/readyz", nil)
		expectStatus(t, r, 200)
		t.Logf("/readyz: %s", r.Body)
	})
}

// TestIdempotencyKeyKafka: an HTTP client that repeats a request with the
// same Idempotency-Key after the instance that ran it stopped gets the
// reply that instance stored; the instance that took over does not run it.
func TestIdempotencyKeyKafka(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		env := newKafkaEnv(brokers)
		url, _ := startGateway(t, env.dial(t))
		first := &conformance.EchoServer{Name: "first"}
		srv := env.Server(t, conformance.Options{})
		testingv1.RegisterEchoServiceServer(srv, first)
		srv.Start(t)
		r := do(t, "POST", url+"/v1/count", strings.NewReader(`{}`), "Idempotency-Key", "order-42")
		expectStatus(t, r, 200)
		mustContain(t, "body", string(r.Body), `"count":"1"`, `"server":"first"`)
		srv.Stop()

		second := &conformance.EchoServer{Name: "second"}
		startServer(t, env, second)
		r = do(t, "POST", url+"/v1/count", strings.NewReader(`{}`), "Idempotency-Key", "order-42")
		expectStatus(t, r, 200)
		mustContain(t, "body", string(r.Body), `"count":"1"`, `"server":"first"`)
		if n := second.Calls(); n != 0 {
			t.Errorf("the second instance ran Count %d times for a key the first ran, want 0", n)
		}
	})
}
