package kafka_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/purista-go/purista"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// TestCloseFailsPendingCalls closes a client while a call waits for its
// reply: the call fails at once with UNAVAILABLE, and later calls too.
func TestCloseFailsPendingCalls(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	e := newEnv(t, brokers)
	srv := e.Server(t, conformance.Options{})
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "s"})
	srv.Start(t)
	t.Cleanup(srv.Stop)
	conn := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
	c := testingv1.NewEchoServiceClient(conn)
	waitFor(t, c, "s", 30*time.Second)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := c.Sleep(ctx, &testingv1.SleepRequest{Duration: durationpb.New(2 * time.Second)})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := conn.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("pending call after Close = %v, want UNAVAILABLE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending call still waiting 5s after Close")
	}
	t.Logf("pending call failed %v after Close", time.Since(start))
	if _, err := c.Echo(context.Background(), &testingv1.EchoRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("call after Close = %v, want UNAVAILABLE", err)
	}
}

// TestGracefulStopFinishesInFlight stops a server while a handler runs:
// the call is still answered, and Serve returns.
func TestGracefulStopFinishesInFlight(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	e := newEnv(t, brokers)
	srv := e.Server(t, conformance.Options{}).(*server)
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "s"})
	srv.Start(t)
	c := testingv1.NewEchoServiceClient(e.Client(t, conformance.Options{}))
	waitFor(t, c, "s", 30*time.Second)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := c.Sleep(ctx, &testingv1.SleepRequest{Duration: durationpb.New(time.Second)})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	srv.Stop() // graceful: waits for the handler
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("call in flight during a graceful stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call in flight not answered within 5s of a graceful stop")
	}
}

// TestStopWhileServePrepares: a Stop that comes while Serve is still
// preparing (ping, topics, subscriptions) leaves nothing behind: Serve
// returns and no consumer group keeps a member of the stopped server.
func TestStopWhileServePrepares(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	e := newEnv(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := []kafka.ServerOption{kafka.WithGroupTimings(250*time.Millisecond, 6*time.Second)}
	for _, o := range e.common() {
		opts = append(opts, o)
	}
	ks, err := kafka.NewServer(brokers, opts...)
	if err != nil {
		t.Fatal(err)
	}
	testingv1.RegisterEchoServiceServer(ks, &conformance.EchoServer{Name: "early"})
	// Stop lands after the topics are checked, before the readers start.
	defer kafka.SetBeforeReaders(func(s *kafka.Server) { s.Stop() })()
	served := make(chan error, 1)
	go func() { served <- ks.Serve(ctx) }()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve stopped while preparing = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after Stop")
	}
	// A reader started after the Stop would join the group a moment
	// later and stay a member.
	time.Sleep(2 * time.Second)
	groups, err := kafka.DescribeGroups(ctx, brokers, []*purista.Service{testingv1.EchoService_PuristaService}, kafka.WithTopicPrefix(e.prefix))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if len(g.Members) > 0 {
			t.Errorf("group %s has %d members after its only server stopped: %+v", g.Group, len(g.Members), g.Members)
		}
	}
}
