// Package events is the event half of the conformance suite: publishing,
// subscriptions, retries, dead letters and re-drive, run on every purista
// transport (in-process, the embedded broker, real Apache Kafka) through
// the contract in proto/purista/testing/events/v1.
//
// It lives apart from package conformance so that binaries which link only
// the request/reply suite do not link the event contract too.
package events

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
	eventsv1 "github.com/purista-go/purista/gen/purista/testing/events/v1"
	"github.com/purista-go/purista/internal/conformance"
)

// Options configure a server's subscriptions.
type Options struct {
	conformance.Options
	// MaxAttempts, FirstBackoff and MaxBackoff set the retry policy; zero
	// MaxAttempts means the transport's default.
	MaxAttempts  int
	FirstBackoff time.Duration
	MaxBackoff   time.Duration
}

// DeadLetter is a transport's dead letter as the suite checks it.
type DeadLetter struct {
	Subscriber string
	EventID    string
	Attempts   int
	Code       codes.Code
	Message    string
	// Raw is the transport's own value, handed back to Redrive.
	Raw any
}

// Env is one isolated system that carries events.
type Env interface {
	conformance.Env
	// EventServer returns a server with subscription options.
	EventServer(t testing.TB, o Options) conformance.Server
	// Publisher returns a publisher outside any server (a client).
	Publisher(t testing.TB) purista.Publisher
	// AwaitSubscribers waits until members instances of service share the
	// event's subscription (for Kafka: its group is stable with members
	// members owning partitions).
	AwaitSubscribers(t testing.TB, service, event string, members int)
	// DeadLetters returns the pending (not yet re-driven) dead letters of
	// a subscribing service.
	DeadLetters(t testing.TB, service string) []DeadLetter
	// Redrive re-drives dead letters of service and returns how many it
	// re-drove: letters re-driven before are skipped.
	Redrive(t testing.TB, service string, letters []DeadLetter) int
}

// Run runs the event suite. newEnv is called once per test.
func Run(t *testing.T, newEnv func(t testing.TB) Env) {
	tests := []struct {
		name string
		fn   func(t *testing.T, env Env)
	}{
		{"FanOut", testFanOut},
		{"RetryDeadLetterRedrive", testRetryDeadLetterRedrive},
		{"LateSubscriber", testLateSubscriber},
		{"PublishErrors", testPublishErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newEnv(t)) })
	}
}

var (
	inventoryService = eventsv1.InventoryService_ServiceDesc.ServiceName
	billingService   = eventsv1.BillingService_ServiceDesc.ServiceName
	orderPlaced      = eventsv1.OrderPlaced_PuristaEvent.Name
)

// Delivery is one invocation of a subscriber.
type Delivery struct {
	Instance string
	OrderID  string
	Seq      int32
	Info     purista.EventInfo
	MD       metadata.MD
	Deadline bool
	Err      error
	At       time.Time
}

// Recorder records the invocations of one subscribing service, across its
// instances, and decides which fail.
type Recorder struct {
	mu         sync.Mutex
	deliveries []Delivery
	fail       func(ev *eventsv1.OrderPlaced) error
}

// SetFail sets the failure policy: a non-nil error fails the invocation;
// the error "panic" panics.
func (r *Recorder) SetFail(fn func(ev *eventsv1.OrderPlaced) error) {
	r.mu.Lock()
	r.fail = fn
	r.mu.Unlock()
}

func (r *Recorder) handle(ctx context.Context, instance string, ev *eventsv1.OrderPlaced) error {
	info, _ := purista.EventFromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	_, hasDeadline := ctx.Deadline()
	r.mu.Lock()
	var err error
	if r.fail != nil {
		err = r.fail(ev)
	}
	r.deliveries = append(r.deliveries, Delivery{
		Instance: instance, OrderID: ev.GetOrderId(), Seq: ev.GetSeq(), Info: info, MD: md.Copy(),
		Deadline: hasDeadline, Err: err, At: time.Now(),
	})
	r.mu.Unlock()
	if err != nil && err.Error() == "panic" {
		panic("conformance: subscriber panics on " + ev.GetOrderId())
	}
	return err
}

// Deliveries returns every invocation so far, in order.
func (r *Recorder) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deliveries)
}

// Succeeded returns the successful invocations.
func (r *Recorder) Succeeded() []Delivery {
	var out []Delivery
	for _, d := range r.Deliveries() {
		if d.Err == nil {
			out = append(out, d)
		}
	}
	return out
}

type inventory struct {
	eventsv1.UnimplementedInventoryServiceServer
	name string
	rec  *Recorder
}

func (s *inventory) ReserveStock(ctx context.Context, ev *eventsv1.OrderPlaced) (*eventsv1.ReserveStockResponse, error) {
	if err := s.rec.handle(ctx, s.name, ev); err != nil {
		return nil, err
	}
	return &eventsv1.ReserveStockResponse{}, nil
}

type billing struct {
	eventsv1.UnimplementedBillingServiceServer
	name string
	rec  *Recorder
}

func (s *billing) ChargeOrder(ctx context.Context, ev *eventsv1.OrderPlaced) (*eventsv1.ChargeOrderResponse, error) {
	if err := s.rec.handle(ctx, s.name, ev); err != nil {
		return nil, err
	}
	return &eventsv1.ChargeOrderResponse{}, nil
}

type orders struct {
	eventsv1.UnimplementedOrdersServiceServer
}

func (orders) PlaceOrder(_ context.Context, req *eventsv1.PlaceOrderRequest) (*eventsv1.OrderPlaced, error) {
	return &eventsv1.OrderPlaced{OrderId: req.GetOrderId(), Customer: req.GetCustomer(), Seq: 1}, nil
}

func (orders) ImportOrders(ctx context.Context, req *eventsv1.ImportOrdersRequest) (*eventsv1.ImportOrdersResponse, error) {
	p := purista.PublisherFromContext(ctx)
	for _, o := range req.GetOrders() {
		if err := eventsv1.PublishOrderPlaced(ctx, p, o); err != nil {
			return nil, err
		}
	}
	return &eventsv1.ImportOrdersResponse{Published: int32(len(req.GetOrders()))}, nil
}

func start(t testing.TB, env Env, o Options, register func(srv grpc.ServiceRegistrar)) {
	srv := env.EventServer(t, o)
	register(srv)
	srv.Start(t)
	t.Cleanup(srv.Stop)
}

// startSubscribers starts n instances of Inventory and of Billing.
func startSubscribers(t testing.TB, env Env, o Options, n int) (inv, bill *Recorder) {
	inv, bill = &Recorder{}, &Recorder{}
	for i := range n {
		start(t, env, o, func(srv grpc.ServiceRegistrar) {
			eventsv1.RegisterInventoryServiceServer(srv, &inventory{name: fmt.Sprintf("inventory-%d", i), rec: inv})
		})
		start(t, env, o, func(srv grpc.ServiceRegistrar) {
			eventsv1.RegisterBillingServiceServer(srv, &billing{name: fmt.Sprintf("billing-%d", i), rec: bill})
		})
	}
	env.AwaitSubscribers(t, inventoryService, orderPlaced, n)
	env.AwaitSubscribers(t, billingService, orderPlaced, n)
	return inv, bill
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// An event published by one service reaches two subscribing services
// exactly once each, the two instances of each service sharing the load, in
// order per key, with metadata, trace context, the event's details and a
// deadline; published from a client, as a method's emitted response, and
// by a handler through its context.
func testFanOut(t *testing.T, env Env) {
	var icMu sync.Mutex
	var intercepted []string
	o := Options{Options: conformance.Options{ServerInterceptors: []grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			icMu.Lock()
			intercepted = append(intercepted, info.FullMethod)
			icMu.Unlock()
			return h(ctx, req)
		},
	}}}
	inv, bill := startSubscribers(t, env, o, 2)
	start(t, env, Options{}, func(srv grpc.ServiceRegistrar) { eventsv1.RegisterOrdersServiceServer(srv, orders{}) })

	const orderCount, perOrder = 10, 3
	pub := env.Publisher(t)
	ctx := metadata.AppendToOutgoingContext(ctxTimeout(t, 30*time.Second), "x-tenant", "acme", "traceparent", traceparent)
	for seq := int32(1); seq <= perOrder; seq++ {
		for i := range orderCount {
			ev := &eventsv1.OrderPlaced{OrderId: fmt.Sprintf("order-%d", i), Seq: seq, Customer: "c"}
			if err := eventsv1.PublishOrderPlaced(ctx, pub, ev); err != nil {
				t.Fatalf("PublishOrderPlaced: %v", err)
			}
		}
	}
	client := eventsv1.NewOrdersServiceClient(env.Client(t, conformance.Options{}))
	for i := range 2 {
		resp, err := client.PlaceOrder(ctx, &eventsv1.PlaceOrderRequest{OrderId: fmt.Sprintf("placed-%d", i), Customer: "c"})
		if err != nil || resp.GetOrderId() != fmt.Sprintf("placed-%d", i) {
			t.Fatalf("PlaceOrder = %v, %v", resp, err)
		}
	}
	var imports []*eventsv1.OrderPlaced
	for i := range 3 {
		imports = append(imports, &eventsv1.OrderPlaced{OrderId: fmt.Sprintf("imported-%d", i), Seq: 1})
	}
	if resp, err := client.ImportOrders(ctx, &eventsv1.ImportOrdersRequest{Orders: imports}); err != nil || resp.GetPublished() != 3 {
		t.Fatalf("ImportOrders = %v, %v", resp, err)
	}

	const total = orderCount*perOrder + 2 + 3
	for name, rec := range map[string]*Recorder{"inventory": inv, "billing": bill} {
		waitFor(t, 30*time.Second, name+" to receive every event", func() bool { return len(rec.Deliveries()) >= total })
	}
	// Anything delivered twice would arrive about now.
	time.Sleep(500 * time.Millisecond)

	for name, rec := range map[string]*Recorder{"inventory": inv, "billing": bill} {
		ds := rec.Deliveries()
		if len(ds) != total {
			t.Errorf("%s: %d deliveries, want %d (each event exactly once)", name, len(ds), total)
		}
		seen := map[string]int{}
		ids := map[string]bool{}
		perInstance := map[string]int{}
		lastSeq := map[string]int32{}
		for _, d := range ds {
			k := fmt.Sprintf("%s#%d", d.OrderID, d.Seq)
			seen[k]++
			ids[d.Info.ID] = true
			perInstance[d.Instance]++
			if d.Seq <= lastSeq[d.OrderID] {
				t.Errorf("%s: %s seq %d handled after seq %d: the order of a key was not kept", name, d.OrderID, d.Seq, lastSeq[d.OrderID])
			}
			lastSeq[d.OrderID] = d.Seq
			if d.Err != nil || !d.Deadline || d.Info.Name != orderPlaced || d.Info.Attempt != 1 || d.Info.ID == "" {
				t.Errorf("%s: delivery %s: err %v, deadline %v, event info %+v; want a deadline and event %s, attempt 1, an id", name, k, d.Err, d.Deadline, d.Info, orderPlaced)
			}
			if got := d.MD.Get("traceparent"); !slices.Equal(got, []string{traceparent}) {
				t.Errorf("%s: delivery %s: traceparent %q, want the publisher's", name, k, got)
			}
			switch {
			case strings.HasPrefix(d.OrderID, "order-"):
				if got := d.MD.Get("x-tenant"); !slices.Equal(got, []string{"acme"}) {
					t.Errorf("%s: delivery %s: x-tenant %q, want [acme] from the publisher's metadata", name, k, got)
				}
				if d.Info.SourceMethod != "" {
					t.Errorf("%s: delivery %s: source method %q, want none for a client's publish", name, k, d.Info.SourceMethod)
				}
			case strings.HasPrefix(d.OrderID, "placed-"):
				if d.Info.SourceMethod != eventsv1.OrdersService_PlaceOrder_FullMethodName {
					t.Errorf("%s: delivery %s: source method %q, want %s", name, k, d.Info.SourceMethod, eventsv1.OrdersService_PlaceOrder_FullMethodName)
				}
			case strings.HasPrefix(d.OrderID, "imported-"):
				if d.Info.SourceMethod != eventsv1.OrdersService_ImportOrders_FullMethodName {
					t.Errorf("%s: delivery %s: source method %q, want %s", name, k, d.Info.SourceMethod, eventsv1.OrdersService_ImportOrders_FullMethodName)
				}
			}
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("%s: event %s delivered %d times, want exactly once", name, k, n)
			}
		}
		if len(seen) != total || len(ids) != total {
			t.Errorf("%s: %d distinct events with %d distinct ids, want %d", name, len(seen), len(ids), total)
		}
		if len(perInstance) != 2 {
			t.Errorf("%s: deliveries per instance %v: want both instances to share the events", name, perInstance)
		}
	}
	icMu.Lock()
	n := 0
	for _, m := range intercepted {
		if m == eventsv1.BillingService_ChargeOrder_FullMethodName {
			n++
		}
	}
	icMu.Unlock()
	if n != total {
		t.Errorf("server interceptors saw %d ChargeOrder invocations, want %d", n, total)
	}
}

// A subscriber that fails retries with backoff, then dead-letters the event
// with the attempts and the error; the events after it are not held back;
// the other subscribing service is not affected; a re-drive delivers the
// event once the subscriber succeeds, to that subscriber only.
func testRetryDeadLetterRedrive(t *testing.T, env Env) {
	o := Options{MaxAttempts: 3, FirstBackoff: 300 * time.Millisecond, MaxBackoff: time.Second}
	inv, bill := startSubscribers(t, env, o, 1)
	var healed sync.Mutex
	healedFlag := false
	bill.SetFail(func(ev *eventsv1.OrderPlaced) error {
		healed.Lock()
		defer healed.Unlock()
		switch {
		case healedFlag:
			return nil
		case ev.GetOrderId() == "poison":
			return status.Error(codes.FailedPrecondition, "card declined")
		case ev.GetOrderId() == "explodes":
			return fmt.Errorf("panic")
		}
		return nil
	})

	pub := env.Publisher(t)
	ctx := ctxTimeout(t, 30*time.Second)
	ids := []string{"poison", "explodes"}
	for i := range 6 {
		ids = append(ids, fmt.Sprintf("good-%d", i))
	}
	for _, id := range ids {
		if err := eventsv1.PublishOrderPlaced(ctx, pub, &eventsv1.OrderPlaced{OrderId: id, Seq: 1}); err != nil {
			t.Fatalf("PublishOrderPlaced(%s): %v", id, err)
		}
	}

	var letters []DeadLetter
	waitFor(t, 30*time.Second, "two dead letters from billing", func() bool {
		letters = env.DeadLetters(t, billingService)
		return len(letters) >= 2
	})
	waitFor(t, 10*time.Second, "inventory to receive every event", func() bool { return len(inv.Deliveries()) >= len(ids) })

	attempts := map[string][]Delivery{}
	var lastGood time.Time
	for _, d := range bill.Deliveries() {
		attempts[d.OrderID] = append(attempts[d.OrderID], d)
		if strings.HasPrefix(d.OrderID, "good-") && d.At.After(lastGood) {
			lastGood = d.At
		}
	}
	for _, id := range ids[2:] {
		if n := len(attempts[id]); n != 1 {
			t.Errorf("billing handled %s %d times, want once", id, n)
		}
	}
	byID := map[string]DeadLetter{}
	for _, l := range letters {
		byID[l.EventID] = l
	}
	for _, c := range []struct {
		id   string
		code codes.Code
		msg  string
	}{{"poison", codes.FailedPrecondition, "card declined"}, {"explodes", codes.Internal, "panic"}} {
		tries := attempts[c.id]
		if len(tries) != 3 {
			t.Fatalf("billing was invoked %d times with %s, want 3 attempts", len(tries), c.id)
		}
		for i, d := range tries {
			if d.Info.Attempt != i+1 || d.Info.ID != tries[0].Info.ID {
				t.Errorf("%s try %d: attempt %d, id %s; want attempt %d, id %s", c.id, i, d.Info.Attempt, d.Info.ID, i+1, tries[0].Info.ID)
			}
		}
		if gap := tries[1].At.Sub(tries[0].At); gap < 250*time.Millisecond {
			t.Errorf("%s: second attempt %v after the first, want the 300ms backoff", c.id, gap)
		}
		if !lastGood.Before(tries[2].At) {
			t.Errorf("%s: the good events were handled by %v, after its last attempt at %v: a failing event held the others back", c.id, lastGood, tries[2].At)
		}
		l, ok := byID[tries[0].Info.ID]
		switch {
		case !ok:
			t.Errorf("no dead letter for %s (event id %s) in %+v", c.id, tries[0].Info.ID, letters)
		case l.Attempts != 3 || l.Code != c.code || !strings.Contains(l.Message, c.msg) || l.Subscriber != eventsv1.BillingService_ChargeOrder_FullMethodName:
			t.Errorf("dead letter of %s = %+v; want 3 attempts, %v %q, subscriber %s", c.id, l, c.code, c.msg, eventsv1.BillingService_ChargeOrder_FullMethodName)
		}
	}
	if got := len(inv.Deliveries()); got != len(ids) {
		t.Errorf("inventory handled %d events, want %d: another service's failures must not affect it", got, len(ids))
	}

	healed.Lock()
	healedFlag = true
	healed.Unlock()
	if n := env.Redrive(t, billingService, letters); n != len(letters) {
		t.Fatalf("re-drove %d of %d dead letters", n, len(letters))
	}
	if pending := env.DeadLetters(t, billingService); len(pending) != 0 {
		t.Errorf("%d dead letters still pending after the re-drive, want none", len(pending))
	}
	// A second re-drive of the same letters delivers nothing again.
	if n := env.Redrive(t, billingService, letters); n != 0 {
		t.Errorf("second re-drive of the same letters re-drove %d, want 0", n)
	}
	succeeded := func(id string) int {
		n := 0
		for _, d := range bill.Succeeded() {
			if d.OrderID == id {
				n++
			}
		}
		return n
	}
	waitFor(t, 20*time.Second, "the re-driven events to be handled", func() bool { return succeeded("poison") >= 1 && succeeded("explodes") >= 1 })
	time.Sleep(500 * time.Millisecond)
	for _, id := range []string{"poison", "explodes"} {
		if n := succeeded(id); n != 1 {
			t.Errorf("re-driven %s handled %d times, want once", id, n)
		}
	}
	for _, d := range bill.Succeeded() {
		if d.OrderID == "poison" && d.Info.Attempt != 1 {
			t.Errorf("re-driven delivery has attempt %d, want 1 (fresh attempts)", d.Info.Attempt)
		}
	}
	if got := len(inv.Deliveries()); got != len(ids) {
		t.Errorf("inventory handled %d events after the re-drive, want still %d: a re-drive is for the failed subscriber only", got, len(ids))
	}
}

// Publishing reports misuse clearly.
func testPublishErrors(t *testing.T, env Env) {
	pub := env.Publisher(t)
	ctx := ctxTimeout(t, 10*time.Second)
	if err := pub.Publish(ctx, nil, nil, &eventsv1.OrderPlaced{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Publish without an event description = %v, want INVALID_ARGUMENT", err)
	}
	if err := pub.Publish(ctx, eventsv1.OrderPlaced_PuristaEvent, nil, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Publish of a nil message = %v, want INVALID_ARGUMENT", err)
	}
	err := eventsv1.PublishOrderPlaced(ctx, purista.PublisherFromContext(ctx), &eventsv1.OrderPlaced{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("PublisherFromContext outside a handler = %v, want FAILED_PRECONDITION", err)
	}
}

// A service that starts after events were published receives them: a new
// subscription starts at the oldest retained event, so deploy order loses
// nothing.
func testLateSubscriber(t *testing.T, env Env) {
	pub := env.Publisher(t)
	ctx := ctxTimeout(t, 30*time.Second)
	for i := range 3 {
		if err := eventsv1.PublishOrderPlaced(ctx, pub, &eventsv1.OrderPlaced{OrderId: fmt.Sprintf("early-%d", i), Seq: 1}); err != nil {
			t.Fatalf("PublishOrderPlaced: %v", err)
		}
	}
	bill := &Recorder{}
	start(t, env, Options{}, func(srv grpc.ServiceRegistrar) {
		eventsv1.RegisterBillingServiceServer(srv, &billing{name: "late", rec: bill})
	})
	env.AwaitSubscribers(t, billingService, orderPlaced, 1)
	waitFor(t, 20*time.Second, "the events published before the subscriber started", func() bool { return len(bill.Deliveries()) >= 3 })
	time.Sleep(300 * time.Millisecond)
	if n := len(bill.Deliveries()); n != 3 {
		t.Errorf("late subscriber handled %d events, want the 3 published before it started, once each", n)
	}
}
