package kafka

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/segmentio/kafka-go"
)

func stickyMember(t *testing.T, id, client string, owned ...int) kafka.GroupMember {
	t.Helper()
	data, err := json.Marshal(stickyUserData{ClientID: client, Owned: owned})
	if err != nil {
		t.Fatal(err)
	}
	return kafka.GroupMember{ID: id, Topics: []string{"t"}, UserData: data}
}

func partitionsOf(n int) []kafka.Partition {
	var ps []kafka.Partition
	for i := range n {
		ps = append(ps, kafka.Partition{Topic: "t", ID: i})
	}
	return ps
}

// TestStickyBalancerKeepsOwners: members that come back under new member
// ids keep their partitions; a missing member's partitions go to the
// members with the fewest; a new member gets its fair share taken from
// the others' surplus, no more.
func TestStickyBalancerKeepsOwners(t *testing.T) {
	b := &stickyBalancer{}
	cases := []struct {
		name    string
		members []kafka.GroupMember
		want    kafka.GroupMemberAssignments
	}{
		{"same instances, new member ids", []kafka.GroupMember{
			stickyMember(t, "m-new-1", "c", 0), stickyMember(t, "m-new-2", "a", 2), stickyMember(t, "m-new-3", "b", 1),
		}, kafka.GroupMemberAssignments{"m-new-1": {"t": {0}}, "m-new-2": {"t": {2}}, "m-new-3": {"t": {1}}}},
		{"an instance gone", []kafka.GroupMember{
			stickyMember(t, "m1", "a", 2), stickyMember(t, "m2", "b", 1),
		}, kafka.GroupMemberAssignments{"m1": {"t": {0, 2}}, "m2": {"t": {1}}}},
		{"an instance added", []kafka.GroupMember{
			stickyMember(t, "m1", "a", 0, 2), stickyMember(t, "m2", "b", 1), stickyMember(t, "m3", "c"),
		}, kafka.GroupMemberAssignments{"m1": {"t": {0}}, "m2": {"t": {1}}, "m3": {"t": {2}}}},
		{"no history", []kafka.GroupMember{
			{ID: "x", Topics: []string{"t"}}, {ID: "y", Topics: []string{"t"}},
		}, kafka.GroupMemberAssignments{"x": {"t": {0, 2}}, "y": {"t": {1}}}},
	}
	for _, c := range cases {
		if got := b.AssignGroups(c.members, partitionsOf(3)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: assigned %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOwnedFromLog(t *testing.T) {
	line := "subscribed to topics and partitions: map[{topic:p.purista.rpc.x partition:2}:-2 {topic:p.purista.rpc.x partition:0}:17]"
	if got := ownedFromLog(line); !reflect.DeepEqual(got, []int{0, 2}) {
		t.Errorf("ownedFromLog = %v, want [0 2]", got)
	}
}
