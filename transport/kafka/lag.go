package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista"
)

// lagTimeout bounds the broker round trips of one scrape.
const lagTimeout = 2 * time.Second

var descLag = prometheus.NewDesc("purista_kafka_consumer_lag_records",
	"Records of a topic partition not yet committed by a consumer group: requests or events waiting for an instance (the end offset less the group's committed offset), read from the broker at scrape time.",
	[]string{"group", "topic", "partition"}, nil)

// lagCollector reports the consumer lag of the groups of the Servers that
// registered it: per group, topic and partition, as the broker knows it —
// what a lag-based autoscaler such as KEDA's Kafka scaler reads too.
type lagCollector struct {
	mu      sync.Mutex
	servers []*Server
}

// registerLag adds s to the lag collector of its metrics registry.
func (s *Server) registerLag() error {
	if s.cfg.metrics == nil {
		return nil
	}
	lc := &lagCollector{servers: []*Server{s}}
	if err := s.cfg.metrics.Register(lc); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
		existing, ok := are.ExistingCollector.(*lagCollector)
		if !ok {
			return err
		}
		existing.mu.Lock()
		existing.servers = append(existing.servers, s)
		existing.mu.Unlock()
	}
	return nil
}

func (lc *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descLag }

func (lc *lagCollector) Collect(ch chan<- prometheus.Metric) {
	lc.mu.Lock()
	servers := append([]*Server(nil), lc.servers...)
	lc.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), lagTimeout)
	defer cancel()
	seen := map[string]bool{}
	for _, s := range servers {
		for _, g := range s.lagGroups() {
			if seen[g.group+"\x00"+g.topic] {
				continue // two instances of a service in one process
			}
			seen[g.group+"\x00"+g.topic] = true
			lags, err := consumerLag(ctx, s.base, g.group, g.topic)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(descLag, err)
				continue
			}
			for p, lag := range lags {
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag), g.group, g.topic, strconv.Itoa(p))
			}
		}
	}
}

type groupTopic struct{ group, topic string }

// lagGroups lists the consumer groups of a serving Server and their topics:
// the request groups and the subscription groups.
func (s *Server) lagGroups() []groupTopic {
	s.mu.Lock()
	committers := append([]*committer(nil), s.committers...)
	serving := s.state == 1
	s.mu.Unlock()
	if !serving {
		return nil
	}
	s.subs.mu.Lock()
	committers = append(committers, s.subs.committers...)
	s.subs.mu.Unlock()
	out := make([]groupTopic, 0, len(committers))
	for _, c := range committers {
		out = append(out, groupTopic{group: c.r.Config().GroupID, topic: c.topic})
	}
	return out
}

// consumerLag returns the lag of group on every partition of topic: its
// end offset less the group's committed offset, or less its first offset
// where the group committed none (a new group starts at the earliest).
func consumerLag(ctx context.Context, b *base, group, topic string) (map[int]int64, error) {
	parts, err := b.prod.partitions(ctx, topic, false)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	ends, err := b.kc.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	committed, err := b.kc.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, err
	}
	if committed.Error != nil && !errors.Is(committed.Error, kafka.GroupIdNotFound) {
		// A group no instance joined yet has committed nothing (Apache
		// Kafka answers so; the embedded broker says GROUP_ID_NOT_FOUND):
		// everything in the topic waits for it.
		return nil, committed.Error
	}
	done := map[int]int64{}
	for _, p := range committed.Topics[topic] {
		if p.Error == nil {
			done[p.Partition] = p.CommittedOffset
		}
	}
	lags := make(map[int]int64, len(parts))
	for _, po := range ends.Topics[topic] {
		if po.Error != nil {
			return nil, po.Error
		}
		from, ok := done[po.Partition]
		if !ok || from < 0 {
			from = po.FirstOffset
		}
		lags[po.Partition] = max(po.LastOffset-from, 0)
	}
	return lags, nil
}

// GroupStatus is a consumer group of a service as the broker knows it: who
// reads the topic now and how far behind it is.
type GroupStatus struct {
	// Service is the service the group belongs to; Event is set for a
	// subscription group, the name of the event it reads.
	Service, Event string
	Group, Topic   string
	// State is the broker's group state: Stable, PreparingRebalance,
	// CompletingRebalance, Empty or Dead.
	State string
	// Members are the instances in the group now.
	Members []GroupMember
	// Lag is the records not yet committed, per partition.
	Lag map[int]int64
}

// GroupMember is one instance in a consumer group.
type GroupMember struct {
	ClientID, Host string
	// Partitions are the partitions of the topic assigned to it.
	Partitions []int
}

// DescribeGroups reports the request group of every service and the
// subscription group of every event a service subscribes to: members and
// lag per partition. A group nobody joined yet is reported with state
// Empty or Dead and its lag (everything written since the topic began).
func DescribeGroups(ctx context.Context, brokers []string, services []*purista.Service, opts ...Option) ([]GroupStatus, error) {
	b, err := adminBase(ctx, brokers, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	var out []GroupStatus
	for _, s := range services {
		out = append(out, GroupStatus{Service: s.Name, Group: b.groupID(s.Name), Topic: b.requestTopic(s.Name)})
		seen := map[string]bool{}
		for _, m := range s.Methods {
			if ev := m.Subscribe; ev != nil && !seen[ev.Name] {
				seen[ev.Name] = true
				out = append(out, GroupStatus{Service: s.Name, Event: ev.Name, Group: b.subscriptionGroup(s.Name, ev.Name), Topic: b.eventTopic(ev)})
			}
		}
	}
	ids := make([]string, len(out))
	for i, g := range out {
		ids[i] = g.Group
	}
	desc, err := b.kc.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: ids})
	if err != nil {
		return nil, fmt.Errorf("kafka: describe consumer groups: %w", err)
	}
	byID := map[string]kafka.DescribeGroupsResponseGroup{}
	for _, g := range desc.Groups {
		byID[g.GroupID] = g
	}
	for i := range out {
		g := &out[i]
		d := byID[g.Group]
		g.State = d.GroupState
		for _, m := range d.Members {
			gm := GroupMember{ClientID: m.ClientID, Host: m.ClientHost}
			for _, t := range m.MemberAssignments.Topics {
				if t.Topic == g.Topic {
					gm.Partitions = append(gm.Partitions, t.Partitions...)
				}
			}
			slices.Sort(gm.Partitions)
			g.Members = append(g.Members, gm)
		}
		if g.Lag, err = consumerLag(ctx, b, g.Group, g.Topic); err != nil {
			return nil, fmt.Errorf("kafka: lag of group %s on %s: %w", g.Group, g.Topic, err)
		}
	}
	return out, nil
}
