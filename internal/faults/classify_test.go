package faults_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// TestLostRepliesToAKilledLeader: a call that ran but got no reply counts
// against the killed partition leader only when it waited while the leader
// was down, whatever scenario it was sent in; any other is a lost reply,
// which fails the suite.
func TestLostRepliesToAKilledLeader(t *testing.T) {
	kill := time.Now()
	l := &ledger{}
	l.outage(leaderKill, kill, kill.Add(10*time.Second))
	lost := func(id, scenario string, sent time.Time) *call {
		return &call{id: id, path: "go", scenario: scenario, sent: sent, done: sent.Add(5 * time.Second), code: codes.DeadlineExceeded}
	}
	l.add(lost("before-kill", "warm-up-3", kill.Add(-100*time.Millisecond)))
	l.add(lost("long-before-kill", "warm-up-3", kill.Add(-time.Minute)))
	l.add(lost("during-kill", leaderKill, kill.Add(time.Second)))
	ran := map[string]int{"before-kill": 1, "long-before-kill": 1, "during-kill": 1}
	res := l.analyse(ran, nil)
	if r := res["warm-up-3"]; r.lostToKilledLeader != 1 || r.lost != 1 {
		t.Errorf("warm-up-3: %d lost to the killed leader, %d lost; want 1 and 1 (%s)", r.lostToKilledLeader, r.lost, r)
	}
	if r := res[leaderKill]; r.lostToKilledLeader != 1 || r.lost != 0 {
		t.Errorf("leader-kill: %d lost to the killed leader, %d lost; want 1 and 0 (%s)", r.lostToKilledLeader, r.lost, r)
	}
}
