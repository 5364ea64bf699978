package kafka

import (
	"sync"
	"time"
)

// replyTopicPrefix starts every client's reply topic name (after the topic
// prefix): purista.reply.<client id>.
const replyTopicPrefix = "purista.reply."

// maxRecentIDs bounds the request ids a server remembers. A duplicate
// request record follows its original within the produce retries of one
// call, so ids are kept until their call's deadline; the bound only caps
// memory under extreme load (about 30 MB at the bound).
const maxRecentIDs = 1 << 18

// recentIDs remembers the request ids a server took until their deadline,
// so a request record written twice (a produce retried after a connection
// was lost while the broker stored it) runs once. Ids are forgotten in the
// order they were added, once their deadline passed or the bound is hit.
type recentIDs struct {
	mu    sync.Mutex
	max   int
	ids   map[string]struct{}
	order []recentID // a queue: head is the oldest
	head  int
}

type recentID struct {
	id      string
	expires time.Time
}

func newRecentIDs(max int) *recentIDs {
	return &recentIDs{max: max, ids: map[string]struct{}{}}
}

// add records id until expires and reports whether it is new.
func (r *recentIDs) add(id string, expires time.Time) bool {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.head < len(r.order) && (len(r.ids) >= r.max || !now.Before(r.order[r.head].expires)) {
		delete(r.ids, r.order[r.head].id)
		r.order[r.head] = recentID{}
		r.head++
	}
	if r.head > len(r.order)/2 && r.head > 1024 {
		// Reuse the queue's front once half of it is consumed.
		n := copy(r.order, r.order[r.head:])
		r.order = r.order[:n]
		r.head = 0
	}
	if _, ok := r.ids[id]; ok {
		return false
	}
	r.ids[id] = struct{}{}
	r.order = append(r.order, recentID{id, expires})
	return true
}
