package cluster

import "testing"

func TestFreePortsAvoidEphemeralRange(t *testing.T) {
	lo, hi := ephemeralRange()
	ports, err := freePorts(9)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p >= lo && p <= hi {
			t.Fatalf("port %d is in the ephemeral range %d-%d: an outgoing connection could take it while its node is down", p, lo, hi)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice in %v", p, ports)
		}
		seen[p] = true
	}
}
