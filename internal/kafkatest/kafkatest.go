// Package kafkatest gives tests a Kafka broker: the embedded one (always
// available, in process) and a real Apache Kafka broker when the test run was
// started under scripts/kafka.sh (as `make test` does when Java and Maven are
// installed).
//
// Most integration tests should run against both:
//
//	func TestRoundTrip(t *testing.T) {
//		kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
//			topic := kafkatest.TopicName(t)
//			kafkatest.CreateTopic(t, brokers, topic, 3)
//			...
//		})
//	}
//
// The "embedded" subtest always runs; the "kafka" subtest runs when
// PURISTA_KAFKA_BROKERS is set, is skipped with one clear message when it is
// not, and fails when PURISTA_REQUIRE_KAFKA=1 demands a real broker.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/embedded"
)

// Environment variables read by this package. scripts/kafka.sh sets the first
// two; the Makefile sets the last two.
const (
	// EnvBrokers holds the real broker's bootstrap addresses, comma-separated.
	EnvBrokers = "PURISTA_KAFKA_BROKERS"
	// EnvVersion holds the real broker's version as the broker logged it.
	EnvVersion = "PURISTA_KAFKA_VERSION"
	// EnvRequire, when "1", turns a missing real broker into a test failure.
	EnvRequire = "PURISTA_REQUIRE_KAFKA"
	// EnvOnly, when "1", skips the embedded broker so that only the
	// real-Kafka tests do broker work (make test-kafka).
	EnvOnly = "PURISTA_KAFKA_ONLY"
)

// SkipMessage is the reason given when the real-Kafka suite is skipped.
const SkipMessage = "real Kafka suite skipped: PURISTA_KAFKA_BROKERS is not set (run via make test with Java 17 and Maven installed)"

// RealMarker starts the log line [Real] writes for every test that uses the
// real broker; the test report counts these lines.
const RealMarker = "kafkatest: real Apache Kafka"

// BrokerInfoMarker starts the log line in which TestRealKafkaBroker describes
// the real broker; the test report repeats it in its summary.
const BrokerInfoMarker = "kafkatest: broker info:"

// Embedded starts an embedded broker for the test and closes it in
// t.Cleanup. It returns the bootstrap addresses.
func Embedded(t testing.TB, opts ...embedded.Option) []string {
	t.Helper()
	if os.Getenv(EnvOnly) == "1" {
		t.Skip("embedded broker skipped: " + EnvOnly + "=1 runs only the real-Kafka tests")
	}
	b, err := embedded.Start(opts...)
	if err != nil {
		t.Fatalf("kafkatest: start embedded broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}

// Real returns the real broker's bootstrap addresses from
// PURISTA_KAFKA_BROKERS. Without it the test is skipped, or fails when
// PURISTA_REQUIRE_KAFKA=1. Tests share the broker: use [TopicName] for
// topics and unique group ids.
func Real(t testing.TB) []string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(EnvBrokers))
	if v == "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal("a real Kafka broker is required (PURISTA_REQUIRE_KAFKA=1) but PURISTA_KAFKA_BROKERS is not set: run the tests through `make test` or `scripts/kafka.sh run -- go test ./...` on a machine with Java 17 and Maven")
		}
		t.Skip(SkipMessage)
	}
	var brokers []string
	for _, b := range strings.Split(v, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	t.Logf("%s %s at %s", RealMarker, Version(), strings.Join(brokers, ","))
	return brokers
}

// Version returns the real broker's version as scripts/kafka.sh found it in
// the broker's log, or "(version unknown)".
func Version() string {
	if v := os.Getenv(EnvVersion); v != "" {
		return v
	}
	return "(version unknown)"
}

// Brokers runs fn twice, as the subtests "embedded" (a fresh embedded
// broker) and "kafka" (the real broker, see [Real]).
func Brokers(t *testing.T, fn func(t *testing.T, brokers []string)) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) { fn(t, Embedded(t)) })
	t.Run("kafka", func(t *testing.T) { fn(t, Real(t)) })
}

// TopicName returns a topic name unique to this test run, derived from the
// test's name so that a broker's topic list shows who made what.
func TopicName(t testing.TB) string {
	return uniqueName(t.Name())
}

// GroupID returns a consumer group id unique to this test run.
func GroupID(t testing.TB) string {
	return uniqueName(t.Name() + "-group")
}

func uniqueName(base string) string {
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 200 {
		name = name[:200]
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	return name + "-" + hex.EncodeToString(suffix[:])
}

// CreateTopic creates a topic with the given number of partitions and
// replication factor 1, and waits until every partition has a leader (a real
// broker answers CreateTopics before leaders are elected). It fails the test
// on error, including when the topic already exists.
func CreateTopic(t testing.TB, brokers []string, name string, partitions int) {
	t.Helper()
	if err := createTopic(context.Background(), brokers, name, partitions); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// DeleteTopic deletes a topic, failing the test on error.
func DeleteTopic(t testing.TB, brokers []string, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{name}})
	if err == nil {
		err = resp.Errors[name]
	}
	if err != nil {
		t.Fatalf("kafkatest: delete topic %s: %v", name, err)
	}
}

func createTopic(ctx context.Context, brokers []string, name string, partitions int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	if err := resp.Errors[name]; err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
		if err == nil && ready(meta, name, partitions) {
			return nil
		}
		if err == nil {
			err = errors.New("partitions have no leader yet")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s not ready: %w", name, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func ready(meta *kafka.MetadataResponse, name string, partitions int) bool {
	for _, tp := range meta.Topics {
		if tp.Name != name || tp.Error != nil || len(tp.Partitions) != partitions {
			continue
		}
		for _, p := range tp.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return false
			}
		}
		return true
	}
	return false
}
