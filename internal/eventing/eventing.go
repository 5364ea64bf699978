// Package eventing holds the event machinery every purista transport
// shares: the retry policy of subscribers, per-key ordering with bounded
// concurrency, the invocation of a subscriber through the dispatch server,
// and the interceptor that gives handlers a publisher and publishes the
// responses of emit_event methods. Transports only move records.
package eventing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
)

// Retry is how often and when a subscriber is invoked again with an event
// it failed: the same policy type as a keyed call's retries.
type Retry = purista.RetryPolicy

// DefaultRetry is the policy of transports not configured otherwise.
var DefaultRetry = Retry{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}

// Deliver calls try with attempts 1, 2, ... until it succeeds, reports its
// error permanent, or MaxAttempts were made, waiting the backoff between
// attempts. When stop is closed during a wait it gives up at once with
// stopped set: the record stays undelivered (not committed) for the next
// owner of its partition.
func Deliver(stop <-chan struct{}, r Retry, try func(attempt int) (err error, permanent bool)) (attempts int, err error, stopped bool) {
	for attempt := 1; ; attempt++ {
		err, permanent := try(attempt)
		if err == nil || permanent || attempt >= r.MaxAttempts {
			return attempt, err, false
		}
		t := time.NewTimer(r.Backoff(attempt))
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return attempt, err, true
		}
	}
}

// Ordered runs tasks concurrently, at most limit at a time, except that
// tasks with the same non-empty key run one after another in the order they
// were submitted. At most held tasks are submitted and not yet finished;
// Go blocks beyond that.
type Ordered struct {
	run  chan struct{}
	held chan struct{}

	mu    sync.Mutex
	tails map[string]chan struct{}
	wg    sync.WaitGroup
}

// NewOrdered returns an Ordered running at most limit tasks at once and
// holding at most 16 × limit.
func NewOrdered(limit int) *Ordered {
	return &Ordered{run: make(chan struct{}, limit), held: make(chan struct{}, 16*limit), tails: map[string]chan struct{}{}}
}

// Go submits fn. It returns false, without running fn, when stop is closed
// before fn could be held. A held fn whose turn comes after stop was closed
// is called with skipped set: it must release its record without handling
// it, so that no later record of its key is handled before it.
func (o *Ordered) Go(stop <-chan struct{}, key []byte, fn func(skipped bool)) bool {
	select {
	case <-stop:
		return false
	default:
	}
	select {
	case o.held <- struct{}{}:
	case <-stop:
		return false
	}
	var wait, mine chan struct{}
	if len(key) > 0 {
		mine = make(chan struct{})
		o.mu.Lock()
		wait = o.tails[string(key)]
		o.tails[string(key)] = mine
		o.mu.Unlock()
	}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		defer func() { <-o.held }()
		if wait != nil {
			<-wait
		}
		skipped := false
		select {
		case o.run <- struct{}{}:
			select {
			case <-stop:
				skipped = true
			default:
			}
		case <-stop:
			skipped = true
		}
		if skipped {
			fn(true)
		} else {
			fn(false)
			<-o.run
		}
		if mine != nil {
			o.mu.Lock()
			if o.tails[string(key)] == mine {
				delete(o.tails, string(key))
			}
			o.mu.Unlock()
			close(mine)
		}
	}()
	return true
}

// Wait waits for every submitted task.
func (o *Ordered) Wait() { o.wg.Wait() }

// Invocation is one delivery of an event to a subscriber.
type Invocation struct {
	Method  dispatch.Method
	Info    purista.EventInfo
	MD      metadata.MD
	Value   []byte
	Timeout time.Duration
}

// Invoke runs the subscriber through disp: interceptors, panic recovery,
// incoming metadata, the event in the context, a deadline of inv.Timeout.
// permanent is set when retrying cannot help: the value does not decode as
// the event message.
func Invoke(parent context.Context, disp *dispatch.Server, inv Invocation) (err error, permanent bool) {
	ctx, cancel := context.WithTimeout(parent, inv.Timeout)
	defer cancel()
	ctx = metadata.NewIncomingContext(ctx, inv.MD.Copy())
	ctx = purista.ContextWithEvent(ctx, inv.Info)
	decodeFailed := false
	res := disp.Call(ctx, inv.Method, "", func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			decodeFailed = true
			return fmt.Errorf("%T is not a protobuf message", v)
		}
		if err := proto.Unmarshal(inv.Value, msg); err != nil {
			decodeFailed = true
			return err
		}
		return nil
	})
	if res.Err == nil {
		return nil, false
	}
	return res.Err, decodeFailed
}

// Subscriber is a method of a served service that subscribes to an event.
type Subscriber struct {
	Service string
	Method  dispatch.Method
	Event   *purista.Event
}

// Subscribers lists the subscribing methods of the services disp serves,
// grouped by service and event in declaration order, as their contracts
// declare them.
func Subscribers(disp *dispatch.Server) ([][]Subscriber, error) {
	var groups [][]Subscriber
	var errs []error
	for _, name := range disp.ServiceNames() {
		svc, ok := disp.Contracts().Service(name)
		if !ok {
			continue
		}
		index := map[string]int{}
		for _, m := range svc.Methods {
			ev := m.Subscribe
			if ev == nil {
				continue
			}
			if ev.Name == "" {
				errs = append(errs, fmt.Errorf("method %s subscribes to an event without a name: pass the generated contract, whose Subscribe is the event's _PuristaEvent", m.FullMethod))
				continue
			}
			dm, err := disp.Lookup(m.FullMethod)
			if err != nil {
				errs = append(errs, fmt.Errorf("subscriber %s: %v", m.FullMethod, status.Convert(err).Message()))
				continue
			}
			sub := Subscriber{Service: name, Method: dm, Event: ev}
			if i, ok := index[ev.Name]; ok {
				groups[i] = append(groups[i], sub)
			} else {
				index[ev.Name] = len(groups)
				groups = append(groups, []Subscriber{sub})
			}
		}
	}
	return groups, errors.Join(errs...)
}

// Interceptor returns the server interceptor every transport puts
// outermost: it gives the handler's context pub, and publishes the
// successful response of a method whose contract (among contracts) sets
// emit_event before the response goes back, failing the call with
// UNAVAILABLE when it cannot.
func Interceptor(pub purista.Publisher, contracts *dispatch.Contracts) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx = purista.ContextWithPublisher(ctx, pub)
		resp, err := handler(ctx, req)
		if err != nil {
			return resp, err
		}
		_, m, ok := contracts.Method(info.FullMethod)
		if !ok || m.Event == nil {
			return resp, nil
		}
		ev := m.Event
		msg, ok := resp.(proto.Message)
		if !ok {
			return nil, status.Errorf(codes.Internal, "method %s returned %T, not the event message %s", info.FullMethod, resp, ev.Name)
		}
		var key []byte
		if ev.PartitionKey != nil {
			key = ev.PartitionKey(msg)
		}
		if err := pub.Publish(ctx, ev, key, msg); err != nil {
			return nil, status.Errorf(codes.Unavailable, "%s ran, but its event %s was not published: %v", info.FullMethod, ev.Name, status.Convert(err).Message())
		}
		return resp, nil
	}
}

// TraceAndMetadata returns the metadata an event published with ctx
// carries: the outgoing metadata, plus the trace context of the incoming
// call when the outgoing metadata has none (a handler publishing).
func TraceAndMetadata(ctx context.Context) metadata.MD {
	md, _ := metadata.FromOutgoingContext(ctx)
	if len(md.Get("traceparent")) > 0 {
		return md
	}
	in, ok := metadata.FromIncomingContext(ctx)
	if !ok || len(in.Get("traceparent")) == 0 {
		return md
	}
	out := md.Copy()
	if out == nil {
		out = metadata.MD{}
	}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := in.Get(k); len(v) > 0 {
			out.Set(k, v...)
		}
	}
	return out
}

// SourceMethod returns the full method of the handler whose context ctx
// is, or "".
func SourceMethod(ctx context.Context) string {
	m, ok := grpc.Method(ctx)
	if !ok || !strings.HasPrefix(m, "/") {
		return ""
	}
	return m
}
