package dispatch

import (
	"container/list"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// Dedup is a bounded window of recent results of idempotent calls, keyed by
// method and idempotency key. A key seen again while its first call runs
// waits for that call instead of running the handler a second time.
type Dedup struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	order   *list.List // of *dedupEntry, oldest first
	entries map[string]*list.Element
}

type dedupEntry struct {
	key     string
	done    chan struct{}
	result  Result
	expires time.Time
}

// NewDedup returns a window holding at most max results for ttl each.
func NewDedup(max int, ttl time.Duration) *Dedup {
	return &Dedup{max: max, ttl: ttl, now: time.Now, order: list.New(), entries: map[string]*list.Element{}}
}

// Do returns the stored result for key, or runs fn and stores its result.
// A result that is not final (Result.Final: a refused request, or a
// transient failure such as the call's deadline or an unavailable
// dependency) is not stored, so a retry runs again.
func (d *Dedup) Do(key string, fn func() Result) Result {
	d.mu.Lock()
	now := d.now()
	if el, ok := d.entries[key]; ok && !expired(el.Value.(*dedupEntry), now) {
		e := el.Value.(*dedupEntry)
		d.mu.Unlock()
		<-e.done
		return e.result
	}
	if el, ok := d.entries[key]; ok {
		d.order.Remove(el) // expired
	}
	e := &dedupEntry{key: key, done: make(chan struct{})}
	d.entries[key] = d.order.PushBack(e)
	d.evictLocked(now)
	d.mu.Unlock()

	res := fn()

	d.mu.Lock()
	e.result = res
	e.expires = d.now().Add(d.ttl)
	if !res.Final() {
		if el, ok := d.entries[key]; ok && el.Value == e {
			d.order.Remove(el)
			delete(d.entries, key)
		}
	}
	close(e.done)
	d.mu.Unlock()
	return res
}

// Len returns the number of stored results.
func (d *Dedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

func (d *Dedup) evictLocked(now time.Time) {
	for d.order.Len() > 0 {
		el := d.order.Front()
		e := el.Value.(*dedupEntry)
		if d.order.Len() <= d.max && !expired(e, now) {
			return
		}
		d.order.Remove(el)
		delete(d.entries, e.key)
	}
}

func expired(e *dedupEntry, now time.Time) bool {
	return !e.expires.IsZero() && !now.Before(e.expires)
}

// Transient reports whether a result with code says nothing final about the
// operation: a retry may well succeed, so such a result is neither kept
// nor stored for an idempotency key.
func Transient(code codes.Code) bool {
	switch code {
	case codes.DeadlineExceeded, codes.Canceled, codes.Unavailable, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}
