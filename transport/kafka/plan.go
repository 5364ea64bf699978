package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista"
)

// TopicPlan says what EnsureTopics would do with one topic: create it as
// the spec says, or leave an existing one alone, reporting how it differs.
type TopicPlan struct {
	// Spec is the topic as the contracts (or the defaults of
	// WithEnsureTopics) want it.
	Spec TopicSpec
	// Exists is true when the topic is on the cluster already; then
	// Partitions, ReplicationFactor and Config are what it has.
	Exists            bool
	Partitions        int
	ReplicationFactor int
	Config            map[string]string
	// Differences describe how an existing topic differs from Spec.
	// EnsureTopics changes no existing topic: they are for an operator.
	Differences []string
}

// PlanTopics reports, without changing anything, what EnsureTopics would
// create and how the topics that exist differ from what the contracts
// declare: partitions, replication factor and configuration.
func PlanTopics(ctx context.Context, brokers []string, services []*purista.Service, events []*purista.Event, opts ...Option) ([]TopicPlan, error) {
	b, err := adminBase(ctx, brokers, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	specs := b.topicSpecs(services, events)
	plans := make([]TopicPlan, 0, len(specs))
	for _, s := range specs {
		if err := purista.ValidateTopic(s.Name); err != nil {
			return nil, err
		}
		p := TopicPlan{Spec: s}
		parts, err := b.prod.lookup(ctx, s.Name)
		var missing errTopicMissing
		switch {
		case errors.As(err, &missing):
			plans = append(plans, p)
			continue
		case err != nil:
			return plans, fmt.Errorf("kafka: read metadata of topic %s: %w", s.Name, err)
		}
		p.Exists, p.Partitions = true, len(parts)
		for _, part := range parts {
			p.ReplicationFactor = max(p.ReplicationFactor, len(part.Replicas))
		}
		if p.Partitions < s.Partitions {
			p.Differences = append(p.Differences, fmt.Sprintf("has %d partitions, %d wanted: add partitions with the cluster's admin tools (keyed requests will move)", p.Partitions, s.Partitions))
		}
		if s.ReplicationFactor > 0 && p.ReplicationFactor != s.ReplicationFactor {
			p.Differences = append(p.Differences, fmt.Sprintf("has replication factor %d, %d wanted: reassign its partitions with the cluster's admin tools", p.ReplicationFactor, s.ReplicationFactor))
		}
		if p.Config, err = topicConfig(ctx, b, s); err != nil {
			return plans, err
		}
		keys := make([]string, 0, len(s.Config))
		for k := range s.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if have := p.Config[k]; have != s.Config[k] {
				p.Differences = append(p.Differences, fmt.Sprintf("has %s=%q, %q wanted: alter the topic's configuration", k, have, s.Config[k]))
			}
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// topicConfig reads the values of the configuration keys the spec sets.
func topicConfig(ctx context.Context, b *base, s TopicSpec) (map[string]string, error) {
	if len(s.Config) == 0 {
		return nil, nil
	}
	res := kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic, ResourceName: s.Name}
	for k := range s.Config {
		res.ConfigNames = append(res.ConfigNames, k)
	}
	resp, err := b.kc.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{res}})
	if err != nil {
		return nil, fmt.Errorf("kafka: read the configuration of topic %s: %w", s.Name, err)
	}
	out := map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("kafka: read the configuration of topic %s: %w", s.Name, r.Error)
		}
		for _, e := range r.ConfigEntries {
			out[e.ConfigName] = e.ConfigValue
		}
	}
	return out, nil
}
