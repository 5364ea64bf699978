package kafka_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/purista-go/purista"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// startEcho serves the Echo service as an instance named name.
func startEcho(t *testing.T, e *env, name string) (*server, *conformance.EchoServer) {
	t.Helper()
	srv := e.Server(t, conformance.Options{}).(*server)
	impl := &conformance.EchoServer{Name: name}
	testingv1.RegisterEchoServiceServer(srv, impl)
	srv.Start(t)
	t.Cleanup(srv.Stop)
	return srv, impl
}

// TestReplyStoreAcrossInstances: a keyed call run on instance A is not run
// again when the same key comes back after A stopped and B took its
// partitions: B answers with the reply A stored (body, status, metadata),
// for an idempotent method and for a keyed call of any other method.
func TestReplyStoreAcrossInstances(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		srvA, a := startEcho(t, e, "A")
		conn := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
		c := testingv1.NewEchoServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()

		first, err := c.Count(ctx, &testingv1.CountRequest{}, kafka.IdempotencyKey("count-1"))
		if err != nil || first.GetServer() != "A" || first.GetCount() != 1 {
			t.Fatalf("first Count = %v, %v; want count 1 from A", first, err)
		}
		keyed := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "echo-1")
		var hdr metadata.MD
		if _, err := c.Echo(keyed, &testingv1.EchoRequest{Message: "once", Key: "k"}); err != nil {
			t.Fatalf("keyed Echo on A: %v", err)
		}
		failed := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "fail-1")
		if _, err := c.Fail(failed, &testingv1.FailRequest{Code: 9, Message: "not now"}); err == nil {
			t.Fatal("Fail on A succeeded")
		}
		if n := a.Calls(); n != 3 {
			t.Fatalf("A ran %d handlers, want 3", n)
		}
		srvA.Stop()

		srvB, b := startEcho(t, e, "B")
		again, err := c.Count(ctx, &testingv1.CountRequest{}, kafka.IdempotencyKey("count-1"))
		if err != nil || again.GetServer() != "A" || again.GetCount() != 1 {
			t.Errorf("Count with the same key on B = %v, %v; want A's stored reply (count 1 from A)", again, err)
		}
		resp, err := c.Echo(keyed, &testingv1.EchoRequest{Message: "once", Key: "k"}, grpc.Header(&hdr))
		if err != nil || resp.GetMessage() != "once" {
			t.Errorf("keyed Echo again on B = %v, %v; want the stored reply", resp, err)
		}
		if _, err := c.Fail(failed, &testingv1.FailRequest{Code: 9, Message: "not now"}); err == nil || !strings.Contains(err.Error(), "not now") {
			t.Errorf("keyed Fail again on B = %v; want the stored FAILED_PRECONDITION", err)
		}
		if n := b.Calls(); n != 0 {
			t.Errorf("B ran %d handlers for keys A ran, want 0", n)
		}
		if n := srvB.Stats().StoredReplies; n != 3 {
			t.Errorf("B answered %d calls from the reply store, want 3", n)
		}
		// A new key runs on B.
		fresh, err := c.Count(ctx, &testingv1.CountRequest{}, kafka.IdempotencyKey("count-2"))
		if err != nil || fresh.GetServer() != "B" {
			t.Errorf("Count with a new key = %v, %v; want B to run it", fresh, err)
		}
	})
}

// TestReplyStoreKeyRunningNotRunTwice: the same key sent again while its
// first run is still going is answered when that run ends, not run again.
func TestReplyStoreKeyRunningNotRunTwice(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		_, impl := startEcho(t, e, "A")
		conn := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
		c := testingv1.NewEchoServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Sleep(ctx, &testingv1.SleepRequest{Duration: durationpb.New(300 * time.Millisecond)}, kafka.IdempotencyKey("slow-1"))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Sleep with a shared key: %v", err)
			}
		}
		if n := impl.Calls(); n != 1 {
			t.Errorf("handler ran %d times for one key sent 3 times at once, want 1", n)
		}
	})
}

// TestReplyStoreOptions: the retention and the retry policy are checked
// when the server or client is made.
func TestReplyStoreOptions(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, time.Second} {
		if _, err := kafka.NewServer([]string{"127.0.0.1:1"}, kafka.WithReplyStore(d)); err == nil || !strings.Contains(err.Error(), "reply store retention") {
			t.Errorf("WithReplyStore(%v): err = %v, want the retention refused", d, err)
		}
	}
	for _, d := range []time.Duration{0, time.Minute, 24 * time.Hour} {
		if _, err := kafka.NewServer([]string{"127.0.0.1:1"}, kafka.WithReplyStore(d)); err != nil {
			t.Errorf("WithReplyStore(%v): %v", d, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kafka.Dial(ctx, []string{"127.0.0.1:1"}, kafka.WithRetry(0, time.Millisecond, time.Second)); err == nil || !strings.Contains(err.Error(), "retry policy") {
		t.Errorf("WithRetry(0 attempts): err = %v, want the policy refused", err)
	}
	if _, err := kafka.Dial(ctx, []string{"127.0.0.1:1"}, kafka.WithRetry(3, time.Second, time.Millisecond)); err == nil || !strings.Contains(err.Error(), "retry policy") {
		t.Errorf("WithRetry(max < first): err = %v, want the policy refused", err)
	}
}

// TestClientRetriesKeyedCalls: a keyed call answered UNAVAILABLE is tried
// again, with the same key, as the retry policy allows; an unkeyed call of
// a method that is not idempotent is tried once.
func TestClientRetriesKeyedCalls(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		_, impl := startEcho(t, e, "A")
		opts := []kafka.ClientOption{kafka.WithRetry(3, 10*time.Millisecond, 50*time.Millisecond)}
		for _, o := range e.common() {
			opts = append(opts, o)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := kafka.Dial(ctx, brokers, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := testingv1.NewEchoServiceClient(conn)
		unavailable := &testingv1.FailRequest{Code: 14, Message: "try later"}

		if _, err := c.Fail(ctx, unavailable); status.Code(err) != codes.Unavailable {
			t.Fatalf("unkeyed Fail = %v, want UNAVAILABLE", err)
		}
		if n := impl.Calls(); n != 1 {
			t.Errorf("unkeyed call ran %d times, want 1: it must not be retried", n)
		}
		if _, err := c.Fail(ctx, unavailable, kafka.IdempotencyKey("retry-1")); status.Code(err) != codes.Unavailable {
			t.Fatalf("keyed Fail = %v, want UNAVAILABLE after the retries", err)
		}
		if n := impl.Calls(); n != 1+3 {
			t.Errorf("keyed call ran %d times, want 3 (the policy's attempts)", n-1)
		}
		if n := conn.Stats().Retries; n != 2 {
			t.Errorf("client counted %d retries, want 2", n)
		}
	})
}

// TestContractRetryPolicyWins: a method whose contract sets a retry policy
// ((purista.v1.method).retry) is retried as the contract says, not as the
// client's WithRetry says; the client's policy serves the other methods.
func TestContractRetryPolicyWins(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		_, impl := startEcho(t, e, "A")

		// The Echo contract with a policy of two tries on Fail.
		echo := *testingv1.EchoService_PuristaService
		echo.Methods = nil
		for _, m := range testingv1.EchoService_PuristaService.Methods {
			m := *m
			if m.Name == "Fail" {
				m.Retry = &purista.RetryPolicy{MaxAttempts: 2, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 5 * time.Millisecond}
			}
			echo.Methods = append(echo.Methods, &m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := kafka.Dial(ctx, brokers, kafka.WithTopicPrefix(e.prefix), kafka.WithLogger(quiet),
			kafka.WithContracts(&echo), kafka.WithRetry(4, 5*time.Millisecond, 5*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := testingv1.NewEchoServiceClient(conn)

		unavailable := &testingv1.FailRequest{Code: 14, Message: "try later"}
		if _, err := c.Fail(ctx, unavailable, kafka.IdempotencyKey("contract-policy")); status.Code(err) != codes.Unavailable {
			t.Fatalf("keyed Fail = %v, want UNAVAILABLE after the retries", err)
		}
		if n := impl.Calls(); n != 2 {
			t.Errorf("keyed Fail ran %d times, want 2 (the contract's max_attempts, not WithRetry's 4)", n)
		}
		if n := conn.Stats().Retries; n != 1 {
			t.Errorf("client counted %d retries, want 1", n)
		}
	})
}
