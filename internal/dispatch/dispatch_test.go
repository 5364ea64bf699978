package dispatch

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestDedupRunsOncePerKey(t *testing.T) {
	d := NewDedup(100, time.Minute)
	var runs atomic.Int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]Result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.Do("k", func() Result {
				runs.Add(1)
				<-release
				return Result{Response: "first"}
			})
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Fatalf("ran %d times for one key, want 1", n)
	}
	for _, r := range results {
		if r.Response != "first" {
			t.Fatalf("result %v, want the first call's", r.Response)
		}
	}
}

func TestDedupBoundsAndExpires(t *testing.T) {
	now := time.Unix(0, 0)
	d := NewDedup(2, time.Minute)
	d.now = func() time.Time { return now }
	run := func(key string) Result { return d.Do(key, func() Result { return Result{Response: key} }) }
	run("a")
	run("b")
	run("c") // evicts a: the window holds 2
	if n := d.Len(); n != 2 {
		t.Fatalf("window holds %d, want 2", n)
	}
	ran := false
	d.Do("a", func() Result { ran = true; return Result{} })
	if !ran {
		t.Fatal("key a was still answered from the window after eviction")
	}
	now = now.Add(2 * time.Minute)
	ran = false
	d.Do("c", func() Result { ran = true; return Result{} })
	if !ran {
		t.Fatal("key c was answered after its TTL")
	}
}

func TestDedupForgetsTransientFailures(t *testing.T) {
	for _, code := range []codes.Code{codes.DeadlineExceeded, codes.Canceled, codes.Unavailable, codes.Aborted, codes.ResourceExhausted} {
		d := NewDedup(10, time.Minute)
		d.Do("k", func() Result { return Result{Err: status.Error(code, "transient")} })
		ran := false
		d.Do("k", func() Result { ran = true; return Result{} })
		if !ran {
			t.Errorf("a call that failed with %v was stored: its retry must run", code)
		}
	}
	d := NewDedup(10, time.Minute)
	d.Do("k", func() Result { return Result{Err: status.Error(codes.InvalidArgument, "bad")} })
	ran := false
	d.Do("k", func() Result { ran = true; return Result{} })
	if ran {
		t.Error("a final failure (INVALID_ARGUMENT) ran again: the retry must get the stored answer")
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mk := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			order = append(order, name)
			return h(ctx, req)
		}
	}
	chain := ChainUnaryServer(mk("a"), nil, mk("b"), mk("c"))
	_, _ = chain(context.Background(), nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) {
		order = append(order, "handler")
		return nil, nil
	})
	if got := len(order); got != 4 || order[0] != "a" || order[1] != "b" || order[2] != "c" || order[3] != "handler" {
		t.Fatalf("order %v, want [a b c handler]", order)
	}
}

func TestSplitMethod(t *testing.T) {
	for _, tc := range []struct {
		in     string
		svc, m string
		ok     bool
	}{
		{"/pkg.Svc/Method", "pkg.Svc", "Method", true},
		{"pkg.Svc/Method", "", "", false},
		{"/pkg.Svc/", "", "", false},
		{"//Method", "", "", false},
		{"", "", "", false},
	} {
		svc, m, ok := SplitMethod(tc.in)
		if svc != tc.svc || m != tc.m || ok != tc.ok {
			t.Errorf("SplitMethod(%q) = %q, %q, %v; want %q, %q, %v", tc.in, svc, m, ok, tc.svc, tc.m, tc.ok)
		}
	}
}

func TestCallOptionsDeliver(t *testing.T) {
	var hdr, trl metadata.MD
	co := ParseCallOptions([]grpc.CallOption{grpc.Header(&hdr), grpc.Trailer(&trl), grpc.WaitForReady(true)})
	co.Deliver(metadata.Pairs("a", "1"), nil)
	if hdr.Get("a")[0] != "1" || trl == nil {
		t.Fatalf("header %v trailer %v: want header a=1 and an empty, non-nil trailer", hdr, trl)
	}
}

func TestToStatusError(t *testing.T) {
	if c := status.Code(ToStatusError(context.DeadlineExceeded)); c != codes.DeadlineExceeded {
		t.Errorf("context deadline = %v, want DEADLINE_EXCEEDED", c)
	}
	if c := status.Code(ToStatusError(context.Canceled)); c != codes.Canceled {
		t.Errorf("context canceled = %v, want CANCELED", c)
	}
}

// TestDedupForgetsRefusedRequests: a request refused before its handler
// ran is not remembered under its key, so the caller's corrected request
// with the same key runs; a final result is remembered.
func TestDedupForgetsRefusedRequests(t *testing.T) {
	d := NewDedup(10, time.Minute)
	d.Do("k", func() Result { return Result{Err: status.Error(codes.InvalidArgument, "bad"), Refused: true} })
	runs := 0
	run := func() Result { runs++; return Result{Response: "ok"} }
	if res := d.Do("k", run); res.Err != nil || runs != 1 {
		t.Fatalf("corrected request after a refused one: %v, %d runs; want it run once", res.Err, runs)
	}
	if d.Do("k", run); runs != 1 {
		t.Fatalf("a final result was not remembered: %d runs", runs)
	}
}
