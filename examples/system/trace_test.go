package system_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/purista-go/purista/embedded"
	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/gateway"
	"github.com/purista-go/purista/internal/syncbuf"
	"github.com/purista-go/purista/transport/kafka"
)

// traceparents sends every request with a traceparent of a new trace, as
// an instrumented HTTP client would, and remembers each request's trace.
type traceparents struct {
	mu     sync.Mutex
	byPath map[string]trace.SpanContext
}

func (tp *traceparents) RoundTrip(r *http.Request) (*http.Response, error) {
	var tid trace.TraceID
	var sid trace.SpanID
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	r = r.Clone(r.Context())
	r.Header.Set("Traceparent", "00-"+hex.EncodeToString(tid[:])+"-"+hex.EncodeToString(sid[:])+"-01")
	tp.mu.Lock()
	tp.byPath[r.Method+" "+r.URL.Path] = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	tp.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// TestTraceKafka follows one gateway call that crosses two services over
// the embedded broker — POST /v1/users/{id}/orders: gateway → orders →
// users, and the OrderPlaced event to notifications — in the spans an
// in-memory exporter receives, and checks the whole tree.
func TestTraceKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	k := system.Kafka{Brokers: b.Addrs(), Options: []kafka.Option{kafka.WithTopicPrefix("trace-test."), kafka.WithTracerProvider(tp)}}
	if _, err := kafka.EnsureTopics(ctx, k.Brokers, contracts.Services(), contracts.Events(), k.Options...); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	logger := func(component string) *slog.Logger {
		return slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})).With("component", component)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
		if t.Failed() {
			t.Logf("component logs:\n%s", logs.String())
		}
	}()
	ln := listen(t)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				t.Errorf("component stopped: %v", err)
			}
		}()
	}
	run(func() error {
		return system.ServeGateway(runCtx, ln, k, system.GatewayConfig{Options: []gateway.Option{gateway.WithTracerProvider(tp)}}, logger(system.Gateway))
	})
	for _, name := range system.Services {
		run(func() error { return system.ServeService(runCtx, name, k, logger(name)) })
	}

	sent := &traceparents{byPath: map[string]trace.SpanContext{}}
	d := &system.Demo{Base: "http://" + ln.Addr().String(), Client: &http.Client{Transport: sent, Timeout: 30 * time.Second}}
	exs, err := d.Run(ctx, system.DemoSteps()[:2]) // create a user, place an order
	if err != nil {
		t.Fatal(err)
	}
	order := exs[1]
	parent := sent.byPath["POST "+strings.TrimPrefix(order.URL, d.Base)]
	if !parent.IsValid() {
		t.Fatalf("no traceparent sent for %s", order.URL)
	}

	// The reply spans end when the broker acknowledged the reply, which
	// may be after the caller read it: wait for the whole tree.
	const want = `server POST /v1/users/{user_id}/orders
  client orders.v1.OrdersService/CreateOrder
    producer send trace-test.purista.rpc.orders.v1.OrdersService
      consumer process trace-test.purista.rpc.orders.v1.OrdersService
        server orders.v1.OrdersService/CreateOrder
          client users.v1.UsersService/GetUser
            producer send trace-test.purista.rpc.users.v1.UsersService
              consumer process trace-test.purista.rpc.users.v1.UsersService
                server users.v1.UsersService/GetUser
                producer send trace-test.purista.reply.*
          producer send trace-test.purista.event.orders.v1.OrderPlaced
        producer send trace-test.purista.reply.*
`
	var spans []tracetest.SpanStub
	var tree string
	var event *tracetest.SpanStub
	for deadline := time.Now().Add(10 * time.Second); ; {
		spans, event = callSpans(exp.GetSpans(), parent.TraceID())
		tree = renderTree(spans, parent.SpanID())
		if tree == want && event != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tree != want {
		t.Fatalf("the call's spans form this tree:\n%s\nwant:\n%s", tree, want)
	}

	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.SpanKind.String()+" "+s.Name] = s
	}
	check := func(span string, want ...attribute.KeyValue) {
		t.Helper()
		s, ok := byName[span]
		if !ok {
			t.Errorf("no span %q", span)
			return
		}
		for _, w := range want {
			if !slices.Contains(s.Attributes, w) {
				t.Errorf("span %q lacks %s=%s; it has %v", span, w.Key, w.Value.Emit(), s.Attributes)
			}
		}
	}
	check("server POST /v1/users/{user_id}/orders",
		attribute.String("http.request.method", "POST"), attribute.String("http.route", "/v1/users/{user_id}/orders"),
		attribute.Int("http.response.status_code", 200), attribute.String(gateway.RequestIDAttr, order.Header.Get("X-Request-Id")))
	check("client orders.v1.OrdersService/CreateOrder",
		attribute.String("rpc.system.name", "purista"), attribute.String("rpc.method", "orders.v1.OrdersService/CreateOrder"), attribute.String("rpc.response.status_code", "OK"))
	check("consumer process trace-test.purista.rpc.users.v1.UsersService",
		attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.consumer.group.name", "trace-test.purista.users.v1.UsersService"))
	check("producer send trace-test.purista.event.orders.v1.OrderPlaced",
		attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "send"))
	check("server users.v1.UsersService/GetUser", attribute.String("rpc.response.status_code", "OK"))

	// The event's subscriber runs in a trace of its own, linked to the
	// publication.
	if event == nil {
		t.Fatal("no process span of OrderPlaced linked to the call's publication")
	}
	if event.Parent.IsValid() || event.SpanContext.TraceID() == parent.TraceID() {
		t.Errorf("the subscriber's span is part of the publishing call's trace; want a trace of its own with a link")
	}
	for _, w := range []attribute.KeyValue{attribute.String("messaging.consumer.group.name", kafkaSubscriptionGroup()), attribute.String("purista.subscriber", "notifications.v1.NotificationsService/OnOrderPlaced")} {
		if !slices.Contains(event.Attributes, w) {
			t.Errorf("the subscriber's span lacks %s=%s; it has %v", w.Key, w.Value.Emit(), event.Attributes)
		}
	}
}

func kafkaSubscriptionGroup() string {
	return "trace-test." + kafka.SubscriptionGroup("notifications.v1.NotificationsService", "orders.v1.OrderPlaced")
}

// callSpans returns the spans of trace tid, and the process span of an
// event linked to the trace's publication of it.
func callSpans(all tracetest.SpanStubs, tid trace.TraceID) ([]tracetest.SpanStub, *tracetest.SpanStub) {
	var spans []tracetest.SpanStub
	for _, s := range all {
		if s.SpanContext.TraceID() == tid {
			spans = append(spans, s)
		}
	}
	for i, s := range all {
		for _, l := range s.Links {
			if l.SpanContext.TraceID() == tid && s.SpanKind == trace.SpanKindConsumer {
				return spans, &all[i]
			}
		}
	}
	return spans, nil
}

var replyTopic = regexp.MustCompile(`purista\.reply\.\S+`)

// renderTree prints spans as an indented tree under the span root (the
// caller's remote span), siblings in the order they started, one line per
// span: its kind and name, with reply topics' client ids as *.
func renderTree(spans []tracetest.SpanStub, root trace.SpanID) string {
	children := map[trace.SpanID][]tracetest.SpanStub{}
	for _, s := range spans {
		children[s.Parent.SpanID()] = append(children[s.Parent.SpanID()], s)
	}
	var b strings.Builder
	var walk func(id trace.SpanID, depth int)
	walk = func(id trace.SpanID, depth int) {
		kids := children[id]
		slices.SortFunc(kids, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
		for _, s := range kids {
			fmt.Fprintf(&b, "%s%s %s\n", strings.Repeat("  ", depth), s.SpanKind, replyTopic.ReplaceAllString(s.Name, "purista.reply.*"))
			walk(s.SpanContext.SpanID(), depth+1)
		}
	}
	walk(root, 0)
	return b.String()
}
