package kafka

import (
	"strings"
	"testing"
	"time"
)

// TestRecentIDs: a request id is new once until its deadline; ids that
// differ are told apart whatever their form; the bound forgets the oldest.
func TestRecentIDs(t *testing.T) {
	later := time.Now().Add(time.Hour)
	r := newRecentIDs(1000)
	hexID, _ := newCallID()
	ids := []string{hexID, strings.ToUpper(hexID), "not-hex", "", strings.Repeat("g", 32), hexID[:31] + "x"}
	for _, id := range ids {
		if !r.add(id, later) {
			t.Fatalf("id %q reported seen the first time", id)
		}
	}
	for _, id := range ids {
		if r.add(id, later) {
			t.Fatalf("id %q reported new the second time", id)
		}
	}

	r = newRecentIDs(1000)
	if !r.add("a", time.Now().Add(-time.Millisecond)) || !r.add("a", later) {
		t.Fatal("an id past its deadline is not forgotten")
	}

	r = newRecentIDs(2)
	r.add("1", later)
	r.add("2", later)
	r.add("3", later)
	if r.add("3", later) {
		t.Fatal("the newest id is forgotten within the bound")
	}
	if !r.add("1", later) {
		t.Fatal("the oldest id is kept beyond the bound")
	}
}
