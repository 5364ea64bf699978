package kafka

import (
	"context"
	"sync"
	"time"
)

// callCtx is the context a handler runs in: its call's deadline, and
// cancelled when the server stops hard or the handler returned. It is
// context.WithDeadline's contract without its cost up front: the timer, the
// Done channel and the link to the server's context are made only once
// something asks for Done, and most handlers never do — for the others
// nothing changes. Up front they were eight of a call's allocations and
// the link a lock the server's workers all took twice per request.
type callCtx struct {
	stop     context.Context // the server's handlers' context
	deadline time.Time

	mu      sync.Mutex
	done    chan struct{} // made by the first Done
	err     error
	release func() // stops the timer and the watch of stop, once armed
}

// withCallDeadline returns a handler's context and the function that
// cancels it, as context.WithDeadline(stop, deadline) would.
func withCallDeadline(stop context.Context, deadline time.Time) (*callCtx, context.CancelFunc) {
	c := &callCtx{stop: stop, deadline: deadline}
	return c, func() { c.end(context.Canceled) }
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Value holds nothing: the server's handlers' context carries no values.
func (c *callCtx) Value(any) any { return nil }

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errLocked()
}

// errLocked returns why the context ended, checking the server's context
// and the clock when no timer does it yet; an end it finds is recorded, so
// that Err and Done agree.
func (c *callCtx) errLocked() error {
	if c.err == nil && c.release == nil {
		if c.stop.Err() != nil {
			c.endLocked(context.Canceled)
		} else if !time.Now().Before(c.deadline) {
			c.endLocked(context.DeadlineExceeded)
		}
	}
	return c.err
}

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if c.err != nil {
		close(c.done) // it ended before anything watched
		return c.done
	}
	if c.errLocked() != nil {
		return c.done // it ended just now, and errLocked closed done
	}
	t := time.AfterFunc(time.Until(c.deadline), func() { c.end(context.DeadlineExceeded) })
	unwatch := context.AfterFunc(c.stop, func() { c.end(context.Canceled) })
	c.release = func() {
		t.Stop()
		unwatch()
	}
	return c.done
}

// end ends the context with err unless it ended before.
func (c *callCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err)
	if c.release != nil {
		c.release()
		c.release = func() {}
	}
}

func (c *callCtx) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
}

// String names the context as context.WithDeadline's do.
func (c *callCtx) String() string {
	return "kafka.callCtx.WithDeadline(" + c.deadline.String() + ")"
}
