package kafka

import (
	"encoding/json"
	"regexp"
	"sort"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// stickyBalancer assigns a group's partitions so that each member keeps
// the partitions it owned before, as far as balance allows. A rebalance
// that does not change who is in the group (a broker restart, a reset
// connection: kafka-go then rejoins under a new member id) so leaves every
// partition where it was: records a member ran but had not committed when
// the rebalance began come back to the same member, whose memory of the
// request ids it took skips them, instead of running a second time on
// another instance. A member is known by its client id, which outlives its
// member id.
//
// Members offer it before kafka-go's range balancer, so a group whose
// members do not all speak it (an older version during a rolling upgrade)
// agrees on range.
type stickyBalancer struct {
	clientID string
	m        *membership
}

const stickyProtocol = "purista-sticky-v1"

type stickyUserData struct {
	ClientID string `json:"c"`
	Owned    []int  `json:"o,omitempty"`
}

func (b *stickyBalancer) ProtocolName() string { return stickyProtocol }

func (b *stickyBalancer) UserData() ([]byte, error) {
	return json.Marshal(stickyUserData{ClientID: b.clientID, Owned: b.m.ownedPartitions()})
}

// AssignGroups keeps each member's previous partitions up to its fair
// share, then hands the rest to the members with the fewest, members in
// client id order so every leader decides alike.
func (b *stickyBalancer) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	byTopic := map[string][]int{}
	for _, p := range partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.ID)
	}
	type member struct {
		id    string
		data  stickyUserData
		count int
	}
	for topic, ids := range byTopic {
		sort.Ints(ids)
		var ms []*member
		for _, gm := range members {
			if !subscribes(gm, topic) {
				continue
			}
			m := &member{id: gm.ID}
			_ = json.Unmarshal(gm.UserData, &m.data) // unreadable: no history, still assigned
			if m.data.ClientID == "" {
				m.data.ClientID = gm.ID
			}
			ms = append(ms, m)
		}
		if len(ms) == 0 {
			continue
		}
		sort.Slice(ms, func(i, j int) bool { return ms[i].data.ClientID < ms[j].data.ClientID })
		fair := (len(ids) + len(ms) - 1) / len(ms)
		owner := map[int]*member{}
		exists := map[int]bool{}
		for _, id := range ids {
			exists[id] = true
		}
		for _, m := range ms {
			for _, p := range m.data.Owned {
				if exists[p] && owner[p] == nil && m.count < fair {
					owner[p] = m
					m.count++
				}
			}
		}
		for _, p := range ids {
			if owner[p] != nil {
				continue
			}
			least := ms[0]
			for _, m := range ms[1:] {
				if m.count < least.count {
					least = m
				}
			}
			owner[p] = least
			least.count++
		}
		for _, p := range ids {
			m := owner[p]
			if out[m.id] == nil {
				out[m.id] = map[string][]int{}
			}
			out[m.id][topic] = append(out[m.id][topic], p)
		}
	}
	return out
}

func subscribes(m kafka.GroupMember, topic string) bool {
	for _, t := range m.Topics {
		if t == topic {
			return true
		}
	}
	return false
}

// partitionRE reads the partitions of kafka-go's "subscribed to topics and
// partitions" line.
var partitionRE = regexp.MustCompile(`partition:(\d+)`)

// ownedFromLog returns the partitions a "subscribed to topics and
// partitions" line names.
func ownedFromLog(line string) []int {
	var out []int
	for _, m := range partitionRE.FindAllStringSubmatch(line, -1) {
		if n, err := strconv.Atoi(m[1]); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}
