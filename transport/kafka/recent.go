package kafka

import (
	"crypto/sha256"
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
//
// Ids are kept as 16 bytes and deadlines as nanoseconds, so neither the map
// nor the queue holds a pointer: the garbage collector does not scan the
// hundreds of thousands of entries a busy server holds.
type recentIDs struct {
	mu    sync.Mutex
	max   int
	ids   map[idKey]struct{}
	order []recentID // a queue: head is the oldest
	head  int
}

// idKey is a request id as 16 bytes: the id itself when it is 32 lowercase
// hex digits (purista's clients make such ids), else the first 16 bytes of
// its SHA-256.
type idKey [16]byte

func keyOf(id string) idKey {
	var k idKey
	if len(id) == 2*len(k) {
		ok := true
		for i := range k {
			hi, lo := fromHex(id[2*i]), fromHex(id[2*i+1])
			if hi > 15 || lo > 15 {
				ok = false
				break
			}
			k[i] = hi<<4 | lo
		}
		if ok {
			return k
		}
	}
	sum := sha256.Sum256([]byte(id))
	copy(k[:], sum[:])
	return k
}

// fromHex is the value of a lowercase hex digit, or 255.
func fromHex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 255
}

type recentID struct {
	id      idKey
	expires int64 // UnixNano
}

func newRecentIDs(max int) *recentIDs {
	return &recentIDs{max: max, ids: map[idKey]struct{}{}}
}

// add records id until expires and reports whether it is new.
func (r *recentIDs) add(id string, expires time.Time) bool {
	key := keyOf(id)
	now := time.Now().UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.head < len(r.order) && (len(r.ids) >= r.max || now >= r.order[r.head].expires) {
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
	if _, ok := r.ids[key]; ok {
		return false
	}
	r.ids[key] = struct{}{}
	r.order = append(r.order, recentID{key, expires.UnixNano()})
	return true
}
