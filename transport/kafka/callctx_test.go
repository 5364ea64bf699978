package kafka

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCallCtx: a handler's context keeps context.WithDeadline's contract
// whether or not something asked for Done before it ended.
func TestCallCtx(t *testing.T) {
	waitDone := func(t *testing.T, ctx context.Context, want error) {
		t.Helper()
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("Done not closed after the context ended (Err %v)", ctx.Err())
		}
		if err := ctx.Err(); !errors.Is(err, want) {
			t.Fatalf("Err() = %v, want %v", err, want)
		}
		if cause := context.Cause(ctx); !errors.Is(cause, want) {
			t.Fatalf("context.Cause = %v, want %v", cause, want)
		}
	}
	for _, armed := range []bool{false, true} {
		name := map[bool]string{false: "unwatched", true: "watched"}[armed]
		t.Run(name+"/deadline", func(t *testing.T) {
			stop, cancelStop := context.WithCancel(context.Background())
			defer cancelStop()
			deadline := time.Now().Add(30 * time.Millisecond)
			ctx, cancel := withCallDeadline(stop, deadline)
			defer cancel()
			if d, ok := ctx.Deadline(); !ok || !d.Equal(deadline) {
				t.Fatalf("Deadline() = %v, %v; want %v, true", d, ok, deadline)
			}
			if armed {
				_ = ctx.Done()
			}
			if err := ctx.Err(); err != nil {
				t.Fatalf("Err() before the deadline = %v", err)
			}
			child, cancelChild := context.WithCancel(ctx)
			defer cancelChild()
			waitDone(t, ctx, context.DeadlineExceeded)
			waitDone(t, child, context.DeadlineExceeded)
		})
		t.Run(name+"/server stops", func(t *testing.T) {
			stop, cancelStop := context.WithCancel(context.Background())
			ctx, cancel := withCallDeadline(stop, time.Now().Add(time.Hour))
			defer cancel()
			if armed {
				_ = ctx.Done()
			}
			cancelStop()
			waitDone(t, ctx, context.Canceled)
		})
		t.Run(name+"/handler returned", func(t *testing.T) {
			ctx, cancel := withCallDeadline(context.Background(), time.Now().Add(time.Hour))
			if armed {
				_ = ctx.Done()
			}
			cancel()
			cancel()
			waitDone(t, ctx, context.Canceled)
		})
	}
	t.Run("past deadline", func(t *testing.T) {
		ctx, cancel := withCallDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		waitDone(t, ctx, context.DeadlineExceeded)
	})
	t.Run("values", func(t *testing.T) {
		type key struct{}
		ctx, cancel := withCallDeadline(context.Background(), time.Now().Add(time.Hour))
		defer cancel()
		if v := context.WithValue(ctx, key{}, 1).Value(key{}); v != 1 {
			t.Fatalf("a value set on the handler's context reads %v", v)
		}
	})
}

// TestCallCtxConcurrent: Done, Err and the end race each other without a
// data race (go test -race) and agree once ended.
func TestCallCtxConcurrent(t *testing.T) {
	for range 200 {
		stop, cancelStop := context.WithCancel(context.Background())
		ctx, cancel := withCallDeadline(stop, time.Now().Add(time.Millisecond))
		errs := make(chan error, 3)
		go func() { <-ctx.Done(); errs <- ctx.Err() }()
		go func() { cancelStop(); errs <- nil }()
		go func() { cancel(); errs <- nil }()
		for range 3 {
			<-errs
		}
		if ctx.Err() == nil {
			t.Fatal("ended context reports no error")
		}
		select {
		case <-ctx.Done():
		default:
			t.Fatal("ended context's Done is open")
		}
	}
}
