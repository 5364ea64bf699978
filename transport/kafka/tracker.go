package kafka

import "sync"

// offsetTracker finds, per partition, the offset that is safe to commit:
// the one after the longest prefix of fetched records whose handling has
// finished. Records are handled concurrently, but the committed offset never
// passes a record still in progress.
type offsetTracker struct {
	mu    sync.Mutex
	parts map[int]*partitionOffsets
}

type partitionOffsets struct {
	inflight []int64 // fetched and not yet released, in fetch order
	done     map[int64]bool
}

func newOffsetTracker() *offsetTracker {
	return &offsetTracker{parts: map[int]*partitionOffsets{}}
}

// start records a fetched offset. An offset at or below one already tracked
// means the partition was fetched again after a rebalance: tracking starts
// over from it.
func (t *offsetTracker) start(partition int, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil || (len(p.inflight) > 0 && offset <= p.inflight[len(p.inflight)-1]) {
		p = &partitionOffsets{done: map[int64]bool{}}
		t.parts[partition] = p
	}
	p.inflight = append(p.inflight, offset)
}

// finish marks offset handled and returns the offset to commit, if the
// committable prefix grew.
func (t *offsetTracker) finish(partition int, offset int64) (commit int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil {
		return 0, false
	}
	p.done[offset] = true
	for len(p.inflight) > 0 && p.done[p.inflight[0]] {
		commit, ok = p.inflight[0]+1, true
		delete(p.done, p.inflight[0])
		p.inflight = p.inflight[1:]
	}
	return commit, ok
}
