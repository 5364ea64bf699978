package kafka

import (
	"testing"
	"time"
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
	p := newProducer(nil, []string{"127.0.0.1:1"}, -1, 16, nil)
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
