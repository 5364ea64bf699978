package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

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
	return t.finishLocked(partition, offset)
}

func (t *offsetTracker) finishLocked(partition int, offset int64) (commit int64, ok bool) {
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

// commitInterval is how long a committer gathers offsets before it commits
// them: one commit request per group reader and interval, however many
// records finished in it.
const commitInterval = 50 * time.Millisecond

// committer commits the offsets its tracker finds safe for one group
// reader. Handlers only record that a record finished; a goroutine commits
// what gathered at most once per commitInterval, so no request pays for a
// commit, or a goroutine hand-off, of its own.
type committer struct {
	offsetTracker
	r       *kafka.Reader
	topic   string
	pending map[int]int64 // under offsetTracker.mu
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	failed  func(partition int, offset int64, err error)
}

// newCommitter starts committing for r, a reader with synchronous commits
// (CommitInterval 0). failed is told of every offset a commit lost.
func newCommitter(r *kafka.Reader, failed func(partition int, offset int64, err error)) *committer {
	c := &committer{
		offsetTracker: offsetTracker{parts: map[int]*partitionOffsets{}},
		r:             r, topic: r.Config().Topic,
		pending: map[int]int64{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		failed:  failed,
	}
	go c.loop()
	return c
}

// finish marks offset handled; the committable prefix it completes is
// committed with the next batch.
func (c *committer) finish(partition int, offset int64) {
	c.mu.Lock()
	off, ok := c.offsetTracker.finishLocked(partition, offset)
	first := false
	if ok {
		first = len(c.pending) == 0
		c.pending[partition] = off
	}
	c.mu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *committer) loop() {
	defer close(c.stopped)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			c.flush()
			return
		}
		// Gather what else finishes for a while; stopping commits at once,
		// and once.
		select {
		case <-time.After(commitInterval):
			c.flush()
		case <-c.stop:
			c.flush()
			return
		}
	}
}

// flush commits the gathered offsets.
func (c *committer) flush() {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	msgs := make([]kafka.Message, 0, len(c.pending))
	for p, off := range c.pending {
		// kafka-go commits the offset after the message's.
		msgs = append(msgs, kafka.Message{Topic: c.topic, Partition: p, Offset: off - 1})
	}
	clear(c.pending)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.r.CommitMessages(ctx, msgs...)
	if err == nil {
		return
	}
	for _, m := range msgs {
		c.failed(m.Partition, m.Offset+1, err)
	}
	// Try again with the next batch, unless a later offset of the
	// partition is already waiting: a coordinator that moved answers
	// again shortly. Records whose commit never lands are delivered again.
	c.mu.Lock()
	retry := false
	for _, m := range msgs {
		if _, newer := c.pending[m.Partition]; !newer {
			c.pending[m.Partition] = m.Offset + 1
			retry = true
		}
	}
	c.mu.Unlock()
	if retry {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// close commits what finished and stops the committer. Call it when no
// handler runs any more, before closing the reader.
func (c *committer) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.stopped
}

// leaveGroups commits what each committer gathered, then closes the
// readers, which leave their groups; the readers close side by side. Call
// it when no handler runs any more.
func leaveGroups(committers []*committer) {
	for _, c := range committers {
		c.close()
	}
	var wg sync.WaitGroup
	for _, c := range committers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.r.Close() }()
	}
	wg.Wait()
}
