package kafka

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/internal/kafkatest"
)

func TestOffsetTrackerCommitsContiguousPrefix(t *testing.T) {
	tr := newOffsetTracker()
	for _, off := range []int64{10, 11, 12, 13} {
		tr.start(0, off)
	}
	if _, ok := tr.finish(0, 12); ok {
		t.Fatal("committed past 10 and 11, which are still in progress")
	}
	if _, ok := tr.finish(0, 11); ok {
		t.Fatal("committed past 10, which is still in progress")
	}
	if off, ok := tr.finish(0, 10); !ok || off != 13 {
		t.Fatalf("after 10, 11, 12 finished: commit %d %v, want 13", off, ok)
	}
	if off, ok := tr.finish(0, 13); !ok || off != 14 {
		t.Fatalf("commit %d %v, want 14", off, ok)
	}
}

func TestOffsetTrackerRestartsAfterRefetch(t *testing.T) {
	tr := newOffsetTracker()
	tr.start(1, 5)
	tr.start(1, 6)
	// A rebalance hands the partition back from the committed offset.
	tr.start(1, 5)
	if off, ok := tr.finish(1, 5); !ok || off != 6 {
		t.Fatalf("commit %d %v, want 6", off, ok)
	}
	if _, ok := tr.finish(1, 6); ok {
		t.Fatal("an offset from before the refetch moved the commit")
	}
	if _, ok := tr.finish(2, 1); ok {
		t.Fatal("an unknown partition produced a commit")
	}
}

func TestStickyPartitionSpreadsOverWindows(t *testing.T) {
	p := newProducer(nil, []string{"127.0.0.1:1"}, -1, 16, nil, nil)
	ids := []int{0, 1, 2}
	first := p.sticky("t", ids)
	for range 100 {
		if got := p.sticky("t", ids); got != first {
			// A window may end between two calls on a slow machine; it
			// must then move to the next partition.
			if got != (first+1)%3 {
				t.Fatalf("partition moved from %d to %d, want the next one", first, got)
			}
			return
		}
	}
	seen := map[int]bool{}
	for range 6 {
		time.Sleep(2 * stickyWindow)
		seen[p.sticky("t", ids)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("over 6 windows the records went to partitions %v, want all 3", seen)
	}
}

// The committer commits the finished prefix of each partition, never a
// record still in progress, and what finished last when it is closed.
func TestCommitterCommitsFinishedPrefix(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		topic, group := kafkatest.TopicName(t), kafkatest.GroupID(t)
		kafkatest.CreateTopic(t, brokers, topic, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, BatchTimeout: time.Millisecond}
		defer w.Close()
		var recs []kafka.Message
		for i := range 10 {
			recs = append(recs, kafka.Message{Value: []byte{byte(i)}})
		}
		if err := w.WriteMessages(ctx, recs...); err != nil {
			t.Fatal(err)
		}

		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: group, Topic: topic,
			StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond,
			HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 6 * time.Second})
		defer r.Close()
		var failures atomic.Int64
		c := newCommitter(r, func(int, int64, error) { failures.Add(1) })
		var offsets []int64
		for range 10 {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c.start(m.Partition, m.Offset)
			offsets = append(offsets, m.Offset)
		}
		committed := func() int64 {
			t.Helper()
			cl := &kafka.Client{Addr: kafka.TCP(brokers...)}
			res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
			if err != nil {
				t.Fatal(err)
			}
			return res.Topics[topic][0].CommittedOffset
		}

		// Everything but the sixth record finishes: only the first five
		// may be committed.
		for i, off := range offsets {
			if i != 5 {
				c.finish(0, off)
			}
		}
		want := offsets[5]
		deadline := time.Now().Add(10 * time.Second)
		for committed() != want && time.Now().Before(deadline) {
			time.Sleep(commitInterval)
		}
		if got := committed(); got != want {
			t.Fatalf("committed offset %d, want %d: the records before the one in progress", got, want)
		}
		time.Sleep(3 * commitInterval)
		if got := committed(); got != want {
			t.Fatalf("committed offset moved to %d past a record in progress (%d)", got, want)
		}

		// The last one finishes as the consumer stops: closing commits it.
		c.finish(0, offsets[5])
		c.close()
		if got, want := committed(), offsets[9]+1; got != want {
			t.Fatalf("after close: committed offset %d, want %d", got, want)
		}
		if n := failures.Load(); n != 0 {
			t.Fatalf("%d commits failed", n)
		}
	})
}
