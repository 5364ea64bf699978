package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista"
)

// TopicSpec is a topic to provision.
type TopicSpec struct {
	Name              string
	Partitions        int
	ReplicationFactor int // -1: the broker's default
	Config            map[string]string
}

// TopicResult reports what provisioning did with one topic.
type TopicResult struct {
	Name string
	// Created is true when the topic was created, false when it existed.
	Created bool
	// Partitions is the partition count the topic has now.
	Partitions int
	// Warning is set when the existing topic differs from the spec (for
	// example fewer partitions than declared).
	Warning string
}

// EnsureTopics creates the request topics of services, the dead-letter
// topics of services that subscribe to events, and the topics of events
// that are missing, with the partitions and replication their
// contracts declare (or the defaults of WithEnsureTopics). It is idempotent
// and reports, per topic, whether it was created.
func EnsureTopics(ctx context.Context, brokers []string, services []*purista.Service, events []*purista.Event, opts ...Option) ([]TopicResult, error) {
	b, err := adminBase(ctx, brokers, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	return ensureTopics(ctx, b, b.topicSpecs(services, events))
}

// topicSpecs are the topics EnsureTopics provisions and PlanTopics plans.
func (b *base) topicSpecs(services []*purista.Service, events []*purista.Event) []TopicSpec {
	specs := servicesTopics(b, services)
	specs = append(specs, replyStoreTopics(b, services)...)
	specs = append(specs, deadLetterTopics(b, services)...)
	for _, e := range events {
		specs = append(specs, b.eventTopicSpec(e))
	}
	return specs
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func servicesTopics(b *base, services []*purista.Service) []TopicSpec {
	specs := make([]TopicSpec, 0, len(services))
	for _, s := range services {
		specs = append(specs, TopicSpec{
			Name:              b.requestTopic(s.Name),
			Partitions:        orDefault(int(s.Partitions), b.cfg.partitions),
			ReplicationFactor: orDefault(int(s.ReplicationFactor), b.cfg.replication),
		})
	}
	return specs
}

func ensureTopics(ctx context.Context, b *base, specs []TopicSpec) ([]TopicResult, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	for _, s := range specs {
		if err := purista.ValidateTopic(s.Name); err != nil {
			return nil, err
		}
	}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: s.ReplicationFactor}
		keys := make([]string, 0, len(s.Config))
		for k := range s.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: s.Config[k]})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := b.kc.CreateTopics(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafka: create topics: %w", err)
	}
	results := make([]TopicResult, 0, len(specs))
	var failed []string
	var causes []error // the brokers' errors, for errors.Is (authz.go)
	for _, s := range specs {
		r := TopicResult{Name: s.Name, Partitions: s.Partitions}
		switch terr := resp.Errors[s.Name]; {
		case terr == nil:
			r.Created = true
		case errors.Is(terr, kafka.TopicAlreadyExists):
			ids, perr := existingPartitions(ctx, b, s.Name)
			if perr != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", s.Name, perr))
				continue
			}
			r.Partitions = len(ids)
			if len(ids) < s.Partitions {
				r.Warning = fmt.Sprintf("has %d partitions, fewer than the %d wanted (declared in the contract, or the default): add partitions with the cluster's admin tools (keyed requests will move)", len(ids), s.Partitions)
			}
		default:
			failed = append(failed, fmt.Sprintf("%s: %v", s.Name, terr))
			causes = append(causes, terr)
			continue
		}
		results = append(results, r)
	}
	if len(failed) > 0 {
		return results, &causedError{msg: "kafka: topics not provisioned: " + strings.Join(failed, "; "), causes: causes}
	}
	// Wait until every topic has leaders, so the first request does not fail.
	for _, s := range specs {
		if err := waitTopic(ctx, b, s.Name); err != nil {
			return results, err
		}
	}
	return results, nil
}

// existingPartitions returns the partitions of a topic CreateTopics said
// exists. When another client created it a moment ago (two instances
// starting together), a real broker's metadata can still miss it for a
// while: wait for it rather than fail.
func existingPartitions(ctx context.Context, b *base, name string) ([]int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ids, err := b.prod.partitions(ctx, name, true)
		var missing errTopicMissing
		if err == nil || !errors.As(err, &missing) || time.Now().After(deadline) {
			return ids, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeAfter(50):
		}
	}
}

func waitTopic(ctx context.Context, b *base, name string) error {
	for {
		parts, err := b.prod.lookup(ctx, name)
		if err == nil {
			ready := true
			for _, p := range parts {
				if p.Leader.Host == "" {
					ready = false
				}
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: topic %s has no leader yet: %w", name, ctx.Err())
		case <-timeAfter(20):
		}
	}
}

// checkTopics reports an error naming every topic of specs that is missing.
func checkTopics(ctx context.Context, b *base, specs []TopicSpec) error {
	if err := b.ping(ctx); err != nil {
		return err
	}
	missing, err := missingTopics(ctx, b, specs)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafka: request topics missing: %s: provision them with `purista topics ensure`", strings.Join(missing, ", "))
	}
	return nil
}

// missingTopics asks a broker which topics of specs do not exist.
func missingTopics(ctx context.Context, b *base, specs []TopicSpec) ([]string, error) {
	var missing []string
	for _, s := range specs {
		if _, err := b.prod.partitions(ctx, s.Name, true); err != nil {
			var m errTopicMissing
			if denied(err) {
				return nil, b.cfg.permissionDenied("describe topic "+s.Name, err)
			}
			if !errors.As(err, &m) {
				return nil, fmt.Errorf("kafka: read metadata of topic %s: %w", s.Name, err)
			}
			missing = append(missing, s.Name)
		}
	}
	return missing, nil
}

// instanceKeepalive is how often a live client writes a keepalive record to
// its reply topic, and a streaming server to its control topic.
const instanceKeepalive = time.Minute

// writeKeepalive writes the keepalive record of instance id to topic.
func writeKeepalive(ctx context.Context, p *producer, topic, id string) error {
	return p.send(ctx, topic, 0, kafka.Message{Headers: []kafka.Header{
		{Key: hdrVersion, Value: []byte(protocolVersion)},
		{Key: hdrKeepalive, Value: []byte(id)},
	}})
}

// keepaliveLoop writes a keepalive record to topic every instanceKeepalive
// until ctx ends.
func keepaliveLoop(ctx context.Context, p *producer, topic, id string, logger *slog.Logger) {
	t := time.NewTicker(instanceKeepalive)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := writeKeepalive(wctx, p, topic, id)
			cancel()
			if err != nil && ctx.Err() == nil {
				logger.Warn("kafka: keepalive not written; `purista topics gc` may take this instance for gone", "topic", topic, "error", err)
			}
		}
	}
}

// CollectIdleTopics deletes the per-instance topics of processes that are
// gone: the reply topics of clients (purista.reply.<client id>) and the
// stream control topics of servers (purista.stream.<client id>). A live
// instance writes a keepalive record to its topic when it starts and every
// minute, and deletes the topic when it stops, so such a topic without a
// record newer than idle (at least 5 minutes) belongs to a process that
// died. It returns the topics it deleted, or with dryRun the ones it would
// delete.
func CollectIdleTopics(ctx context.Context, brokers []string, idle time.Duration, dryRun bool, opts ...Option) ([]string, error) {
	if idle < 5*time.Minute {
		return nil, fmt.Errorf("kafka: idle time %v is too short: live instances write a keepalive every minute; use 5 minutes or more", idle)
	}
	b, err := adminBase(ctx, brokers, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	conn, err := b.dialer.DialContext(ctx, "tcp", b.prod.broker())
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics: %w", err)
	}
	parts, err := conn.ReadPartitions()
	_ = conn.Close()
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics: %w", err)
	}
	instanceTopic := func(topic string) bool {
		return strings.HasPrefix(topic, b.cfg.topicPrefix+ReplyTopicPrefix) || strings.HasPrefix(topic, b.cfg.topicPrefix+StreamTopicPrefix)
	}
	since := time.Now().Add(-idle)
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range parts {
		if p.ID == 0 && instanceTopic(p.Topic) {
			req.Topics[p.Topic] = []kafka.OffsetRequest{kafka.TimeOffsetOf(0, since)}
		}
	}
	if len(req.Topics) == 0 {
		return nil, nil
	}
	resp, err := b.kc.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafka: read instance topic offsets: %w", err)
	}
	var idleTopics []string
	for topic, offsets := range resp.Topics {
		for _, po := range offsets {
			// No record at or after since: nothing was written while a
			// live instance would have written keepalives.
			// Brokers answer offset -1 when there is none.
			if po.Partition != 0 || po.Error != nil {
				continue
			}
			found := false
			for off := range po.Offsets {
				found = found || off >= 0
			}
			if !found {
				idleTopics = append(idleTopics, topic)
			}
		}
	}
	sort.Strings(idleTopics)
	if dryRun || len(idleTopics) == 0 {
		return idleTopics, nil
	}
	dresp, err := b.kc.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: idleTopics})
	if err != nil {
		return nil, fmt.Errorf("kafka: delete idle topics: %w", err)
	}
	var deleted, failed []string
	for _, t := range idleTopics {
		if derr := dresp.Errors[t]; derr != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", t, derr))
		} else {
			deleted = append(deleted, t)
		}
	}
	if len(failed) > 0 {
		return deleted, fmt.Errorf("kafka: idle topics not deleted: %s: check that this principal may delete topics, then run again", strings.Join(failed, "; "))
	}
	return deleted, nil
}

// adminBase connects for a one-off administrative task and checks a broker
// answers. Close it when done.
func adminBase(ctx context.Context, brokers []string, opts []Option) (*base, error) {
	cc := clientConfig{commonConfig: defaultCommon()}
	for _, o := range opts {
		o.applyClient(&cc)
	}
	b, err := newBase(brokers, cc.commonConfig)
	if err != nil {
		return nil, err
	}
	if err := b.ping(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}
