package kafkatest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/internal/kafkatest"
)

// TestRealKafkaBroker proves, in `go test -v` output, that a real Apache
// Kafka broker answered: it logs the broker's version, the API versions it
// negotiates and its cluster metadata.
func TestRealKafkaBroker(t *testing.T) {
	brokers := kafkatest.Real(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}

	av, err := client.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
	if err != nil {
		t.Fatalf("ApiVersions: %v", err)
	}
	if av.Error != nil {
		t.Fatalf("ApiVersions: %v", av.Error)
	}
	var produce, fetch kafka.ApiVersionsResponseApiKey
	for _, k := range av.ApiKeys {
		switch k.ApiKey {
		case 0:
			produce = k
		case 1:
			fetch = k
		}
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	if meta.ClusterID == "purista-embedded" || meta.ClusterID == "kfake" {
		t.Fatalf("PURISTA_KAFKA_BROKERS points at an embedded broker (cluster id %q), not real Kafka", meta.ClusterID)
	}
	t.Logf("%s Apache Kafka %s: cluster %s, controller node %d, %d broker(s), %d API keys (Produce v%d-v%d, Fetch v%d-v%d)",
		kafkatest.BrokerInfoMarker, kafkatest.Version(), meta.ClusterID, meta.Controller.ID, len(meta.Brokers), len(av.ApiKeys),
		produce.MinVersion, produce.MaxVersion, fetch.MinVersion, fetch.MaxVersion)
}

// TestBrokers checks the helpers against both brokers: a created topic is
// ready for produce and fetch, creating it twice fails, and topics are never
// auto-created.
func TestBrokers(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		topic := kafkatest.TopicName(t)
		kafkatest.CreateTopic(t, brokers, topic, 2)

		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}}
		defer w.Close()
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
			t.Fatalf("write: %v", err)
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: brokers, Topic: topic, GroupID: kafkatest.GroupID(t), StartOffset: kafka.FirstOffset,
			MaxWait: 100 * time.Millisecond, SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second,
		})
		defer r.Close()
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if string(m.Key) != "k" || string(m.Value) != "v" {
			t.Fatalf("read %q=%q, want k=v", m.Key, m.Value)
		}

		client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
		resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(resp.Errors[topic], kafka.TopicAlreadyExists) {
			t.Fatalf("second CreateTopics: %v, want TopicAlreadyExists", resp.Errors[topic])
		}

		missing := kafkatest.TopicName(t)
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{missing}})
		if err != nil {
			t.Fatal(err)
		}
		if len(meta.Topics) != 1 || !errors.Is(meta.Topics[0].Error, kafka.UnknownTopicOrPartition) {
			t.Fatalf("metadata for a topic never created: %+v; the broker must not auto-create topics", meta.Topics)
		}
	})
}

func TestTopicName(t *testing.T) {
	a, b := kafkatest.TopicName(t), kafkatest.TopicName(t)
	if a == b {
		t.Fatalf("two calls gave the same name %q", a)
	}
	if !strings.HasPrefix(a, "TestTopicName-") {
		t.Fatalf("name %q does not start with the test name", a)
	}
	t.Run("sub test/with spaces", func(t *testing.T) {
		n := kafkatest.TopicName(t)
		for _, r := range n {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
				t.Fatalf("name %q has a character Kafka rejects: %q", n, r)
			}
		}
	})
}
