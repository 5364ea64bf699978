package eventing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
)

func TestBackoff(t *testing.T) {
	r := Retry{MaxAttempts: 6, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, r.Backoff(n))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("backoffs %v, want %v", got, want)
	}
	for _, bad := range []Retry{{MaxAttempts: 0}, {MaxAttempts: 1, InitialBackoff: time.Second, MaxBackoff: time.Millisecond}, {MaxAttempts: 1, InitialBackoff: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	if err := DefaultRetry.Validate(); err != nil {
		t.Error(err)
	}
}

func TestDeliver(t *testing.T) {
	r := Retry{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	fail := errors.New("fail")
	var tries []int
	n, err, stopped := Deliver(nil, r, func(a int) (error, bool) { tries = append(tries, a); return fail, false })
	if n != 3 || err != fail || stopped || !slices.Equal(tries, []int{1, 2, 3}) {
		t.Errorf("always failing: %d attempts %v, err %v, stopped %v", n, tries, err, stopped)
	}
	n, err, _ = Deliver(nil, r, func(a int) (error, bool) {
		if a < 2 {
			return fail, false
		}
		return nil, false
	})
	if n != 2 || err != nil {
		t.Errorf("succeeding at 2: %d attempts, %v", n, err)
	}
	n, err, _ = Deliver(nil, r, func(int) (error, bool) { return fail, true })
	if n != 1 || err != fail {
		t.Errorf("permanent: %d attempts, %v", n, err)
	}
	stop := make(chan struct{})
	close(stop)
	slow := Retry{MaxAttempts: 3, InitialBackoff: time.Hour, MaxBackoff: time.Hour}
	start := time.Now()
	n, _, stopped = Deliver(stop, slow, func(int) (error, bool) { return fail, false })
	if n != 1 || !stopped || time.Since(start) > time.Second {
		t.Errorf("stopped during backoff: %d attempts, stopped %v after %v", n, stopped, time.Since(start))
	}
}

func TestOrderedKeepsKeyOrderAndBound(t *testing.T) {
	o := NewOrdered(4)
	var mu sync.Mutex
	order := map[string][]int{}
	var running, peak atomic.Int64
	for i := range 200 {
		key := []byte(fmt.Sprintf("k%d", i%5))
		if i%10 == 9 {
			key = nil
		}
		o.Go(nil, key, func(skipped bool) {
			if skipped {
				t.Error("skipped without a stop")
			}
			if n := running.Add(1); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(100 * time.Microsecond)
			running.Add(-1)
			mu.Lock()
			order[string(key)] = append(order[string(key)], i)
			mu.Unlock()
		})
	}
	o.Wait()
	for k, seq := range order {
		if k != "" && !slices.IsSorted(seq) {
			t.Errorf("key %s ran in order %v", k, seq)
		}
	}
	if p := peak.Load(); p > 4 || p < 2 {
		t.Errorf("peak concurrency %d, want 2..4", p)
	}
}

func TestOrderedSkipsAfterStop(t *testing.T) {
	o := NewOrdered(1)
	stop := make(chan struct{})
	release := make(chan struct{})
	var ran, skipped atomic.Int64
	o.Go(stop, []byte("k"), func(s bool) { <-release; ran.Add(1) })
	o.Go(stop, []byte("k"), func(s bool) {
		if s {
			skipped.Add(1)
		} else {
			ran.Add(1)
		}
	})
	close(stop)
	close(release)
	o.Wait()
	if ran.Load() != 1 || skipped.Load() != 1 {
		t.Errorf("ran %d, skipped %d; want the queued task skipped after stop", ran.Load(), skipped.Load())
	}
	if o.Go(stop, nil, func(bool) { t.Error("held after stop") }) {
		t.Error("Go held a task after stop")
	}
}

type recordingPublisher struct {
	mu   sync.Mutex
	keys [][]byte
	msgs []proto.Message
	md   []metadata.MD
	src  []string
	err  error
}

func (p *recordingPublisher) Publish(ctx context.Context, ev *purista.Event, key []byte, msg proto.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, key)
	p.msgs = append(p.msgs, msg)
	p.md = append(p.md, TraceAndMetadata(ctx))
	p.src = append(p.src, SourceMethod(ctx))
	return p.err
}

type stream struct{ method string }

func (s stream) Method() string             { return s.method }
func (stream) SetHeader(metadata.MD) error  { return nil }
func (stream) SendHeader(metadata.MD) error { return nil }
func (stream) SetTrailer(metadata.MD) error { return nil }

func TestInterceptorEmitsEvent(t *testing.T) {
	const method = "/eventing.test.v1.Svc/Emit"
	ev := &purista.Event{Name: "eventing.test.v1.Emitted", Topic: "t", PartitionKey: func(m proto.Message) []byte { return []byte(m.(*wrapperspb.StringValue).GetValue()) }}
	contracts, err := dispatch.NewContracts("test", []*purista.Service{{Name: "eventing.test.v1.Svc", Methods: []*purista.Method{
		{Name: "Emit", FullMethod: method, Event: ev},
		{Name: "Plain", FullMethod: "/eventing.test.v1.Svc/Plain"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pub := &recordingPublisher{}
	ic := Interceptor(pub, contracts)
	ctx := grpc.NewContextWithServerTransportStream(context.Background(), stream{method})
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("traceparent", "tp", "x-other", "no"))
	var handlerPub purista.Publisher
	resp, err := ic(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
		handlerPub = purista.PublisherFromContext(ctx)
		return wrapperspb.String("k1"), nil
	})
	if err != nil || resp.(*wrapperspb.StringValue).GetValue() != "k1" {
		t.Fatalf("interceptor = %v, %v", resp, err)
	}
	if handlerPub != pub {
		t.Errorf("handler's publisher %T, want the transport's", handlerPub)
	}
	if len(pub.msgs) != 1 || string(pub.keys[0]) != "k1" || pub.src[0] != method ||
		!slices.Equal(pub.md[0].Get("traceparent"), []string{"tp"}) || len(pub.md[0].Get("x-other")) != 0 {
		t.Errorf("published %v keys %q from %q with %v; want the response keyed k1 from %s with the trace context only", pub.msgs, pub.keys, pub.src, pub.md, method)
	}

	// A failed handler publishes nothing; a failed publish fails the call.
	_, err = ic(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
		return nil, status.Error(codes.Aborted, "no")
	})
	if status.Code(err) != codes.Aborted || len(pub.msgs) != 1 {
		t.Errorf("failed handler: %v, %d published", err, len(pub.msgs))
	}
	pub.err = status.Error(codes.Unavailable, "broker down")
	_, err = ic(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
		return wrapperspb.String("k2"), nil
	})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("failed publish: %v, want UNAVAILABLE", err)
	}
	// A method without emit_event publishes nothing.
	pub.err = nil
	if _, err := ic(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/eventing.test.v1.Svc/Plain"}, func(context.Context, any) (any, error) {
		return wrapperspb.String("x"), nil
	}); err != nil || len(pub.msgs) != 2 {
		t.Errorf("plain method: %v, %d published (the failed publish counted once)", err, len(pub.msgs))
	}
}
