package kafka_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
	eventsv1 "github.com/purista-go/purista/gen/purista/testing/events/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/conformance/events"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// eventEnv is env with what the event suite needs.
type eventEnv struct{ *env }

func (e eventEnv) EventServer(t testing.TB, o events.Options) conformance.Server {
	opts := []kafka.ServerOption{kafka.WithUnaryServerInterceptors(o.ServerInterceptors...), kafka.WithGroupTimings(250*time.Millisecond, 6*time.Second)}
	if o.MaxAttempts > 0 {
		opts = append(opts, kafka.WithEventRetry(o.MaxAttempts, o.FirstBackoff, o.MaxBackoff))
	}
	for _, c := range e.common() {
		opts = append(opts, c)
	}
	srv, err := kafka.NewServer(e.brokers, opts...)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	return &server{Server: srv}
}

func (e eventEnv) Publisher(t testing.TB) purista.Publisher {
	return e.Client(t, conformance.Options{}).(*kafka.ClientConn)
}

func (e eventEnv) AwaitSubscribers(t testing.TB, service, event string, members int) {
	t.Helper()
	group := e.prefix + kafka.SubscriptionGroup(service, event)
	awaitGroup(t, e.brokers, group, members)
}

// awaitGroup waits until group is stable with members members, each owning
// a partition.
func awaitGroup(t testing.TB, brokers []string, group string, members int) {
	t.Helper()
	kc := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := kc.DescribeGroups(context.Background(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(resp.Groups) == 1 {
			g := resp.Groups[0]
			owning := 0
			for _, m := range g.Members {
				for _, tp := range m.MemberAssignments.Topics {
					if len(tp.Partitions) > 0 {
						owning++
						break
					}
				}
			}
			if g.GroupState == "Stable" && len(g.Members) == members && owning == members {
				return
			}
			last = g.GroupState
		} else if err != nil {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s did not become stable with %d members owning partitions (last: %s)", group, members, last)
}

func (e eventEnv) DeadLetters(t testing.TB, service string) []events.DeadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	letters, err := kafka.ListDeadLetters(ctx, e.brokers, service, kafka.WithTopicPrefix(e.prefix), kafka.WithLogger(quiet))
	if err != nil {
		t.Fatalf("ListDeadLetters: %v", err)
	}
	var out []events.DeadLetter
	for _, l := range letters {
		if l.RedrivenAt.IsZero() {
			out = append(out, events.DeadLetter{Subscriber: l.Subscriber, EventID: l.EventID, Attempts: l.Attempts, Code: l.Status.Code(), Message: l.Status.Message(), Raw: l})
		}
	}
	return out
}

func (e eventEnv) Redrive(t testing.TB, service string, letters []events.DeadLetter) int {
	t.Helper()
	raw := make([]kafka.DeadLetter, len(letters))
	for i, l := range letters {
		raw[i] = l.Raw.(kafka.DeadLetter)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := kafka.Redrive(ctx, e.brokers, raw, kafka.WithTopicPrefix(e.prefix), kafka.WithLogger(quiet))
	if err != nil {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	return n
}

func TestEvents(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		events.Run(t, func(t testing.TB) events.Env { return eventEnv{newEnv(t, brokers)} })
	})
}

// gatedBilling fails until healed and records what it handled.
type gatedBilling struct {
	eventsv1.UnimplementedBillingServiceServer
	name     string
	attempts chan string
	healed   atomic.Bool
}

func (g *gatedBilling) ChargeOrder(_ context.Context, ev *eventsv1.OrderPlaced) (*eventsv1.ChargeOrderResponse, error) {
	g.attempts <- g.name + ":" + ev.GetOrderId()
	if !g.healed.Load() {
		return nil, status.Error(codes.Unavailable, "payment provider down")
	}
	return &eventsv1.ChargeOrderResponse{}, nil
}

// A graceful stop does not wait out a retry's backoff, and does not commit
// the event being retried: the next instance handles it.
func TestEventsStopDuringRetry(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := eventEnv{newEnv(t, brokers)}
		service := eventsv1.BillingService_ServiceDesc.ServiceName
		event := eventsv1.OrderPlaced_PuristaEvent.Name
		first := &gatedBilling{name: "first", attempts: make(chan string, 10)}
		srv := e.EventServer(t, events.Options{MaxAttempts: 5, FirstBackoff: time.Minute, MaxBackoff: time.Minute})
		eventsv1.RegisterBillingServiceServer(srv, first)
		srv.Start(t)
		e.AwaitSubscribers(t, service, event, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := eventsv1.PublishOrderPlaced(ctx, e.Publisher(t), &eventsv1.OrderPlaced{OrderId: "o-1"}); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-first.attempts:
			if a != "first:o-1" {
				t.Fatalf("attempt %s", a)
			}
		case <-ctx.Done():
			t.Fatal("the event never reached the subscriber")
		}
		start := time.Now()
		srv.Stop()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("graceful stop took %v: it waited for the retry's backoff", d)
		}

		second := &gatedBilling{name: "second", attempts: make(chan string, 10)}
		second.healed.Store(true)
		srv2 := e.EventServer(t, events.Options{})
		eventsv1.RegisterBillingServiceServer(srv2, second)
		srv2.Start(t)
		t.Cleanup(srv2.Stop)
		select {
		case a := <-second.attempts:
			if a != "second:o-1" {
				t.Fatalf("attempt %s", a)
			}
		case <-ctx.Done():
			t.Fatal("the event being retried at the stop was not delivered to the next instance")
		}
		if n := len(first.attempts); n != 0 {
			t.Errorf("the stopped instance made %d more attempts", n)
		}
	})
}

// TestMalformedEventsAreDeadLettered: event records that cannot be handled
// (no purista-event header, an event the topic does not carry, a garbage
// purista-time) are dead-lettered at once with the reason, never dropped
// silently; an empty event message is still delivered.
func TestMalformedEventsAreDeadLettered(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := eventEnv{newEnv(t, brokers)}
		service := eventsv1.BillingService_ServiceDesc.ServiceName
		ev := eventsv1.OrderPlaced_PuristaEvent
		billing := &gatedBilling{name: "b", attempts: make(chan string, 10)}
		billing.healed.Store(true)
		srv := e.EventServer(t, events.Options{})
		eventsv1.RegisterBillingServiceServer(srv, billing)
		srv.Start(t)
		t.Cleanup(srv.Stop)
		e.AwaitSubscribers(t, service, ev.Name, 1)

		hdr := func(kv ...string) []kafkago.Header {
			var hs []kafkago.Header
			for i := 0; i < len(kv); i += 2 {
				hs = append(hs, kafkago.Header{Key: kv[i], Value: []byte(kv[i+1])})
			}
			return hs
		}
		topic := e.prefix + purista.EventTopic(ev)
		writeRecords(t, brokers, topic,
			kafkago.Message{Value: []byte("no headers at all")},
			kafkago.Message{Value: []byte{}, Headers: hdr("purista-version", "1", "purista-id", "e-unknown", "purista-event", "nobody.v1.Unknown")},
			kafkago.Message{Value: []byte{}, Headers: hdr("purista-version", "1", "purista-id", "e-time", "purista-event", ev.Name, "purista-time", "yesterday")},
		)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := eventsv1.PublishOrderPlaced(ctx, e.Publisher(t), &eventsv1.OrderPlaced{}); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-billing.attempts:
			if a != "b:" {
				t.Errorf("subscriber got %q, want the empty event", a)
			}
		case <-ctx.Done():
			t.Fatal("the empty event was not delivered")
		}
		var letters []events.DeadLetter
		waitUntil(t, "three dead letters", func() bool { letters = e.DeadLetters(t, service); return len(letters) >= 3 })
		for _, l := range letters {
			if l.Code != codes.InvalidArgument || l.Message == "" {
				t.Errorf("dead letter %+v: want INVALID_ARGUMENT with the reason", l)
			}
			t.Logf("dead letter: %s", l.Message)
		}
		if len(letters) != 3 {
			t.Errorf("%d dead letters, want 3", len(letters))
		}
		if n := len(billing.attempts); n != 0 {
			t.Errorf("subscriber ran %d more times, for malformed records", n)
		}
	})
}
