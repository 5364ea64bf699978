package embedded_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/purista-go/purista/embedded"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/internal/syncbuf"
)

func start(t *testing.T, opts ...embedded.Option) *embedded.Broker {
	t.Helper()
	b, err := embedded.Start(opts...)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func createTopic(t *testing.T, client *kafka.Client, topic string, partitions int) {
	t.Helper()
	resp, err := client.CreateTopics(ctx(t), &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	if err := resp.Errors[topic]; err != nil {
		t.Fatalf("CreateTopics %s: %v", topic, err)
	}
}

func produce(t *testing.T, client *kafka.Client, topic string, values ...string) {
	t.Helper()
	var recs []kafka.Record
	for _, v := range values {
		recs = append(recs, kafka.Record{Value: kafka.NewBytes([]byte(v))})
	}
	resp, err := client.Produce(ctx(t), &kafka.ProduceRequest{
		Topic:        topic,
		Partition:    0,
		RequiredAcks: kafka.RequireAll,
		Records:      kafka.NewRecordReader(recs...),
	})
	if err != nil {
		t.Fatalf("Produce: %v", err)
	}
	if resp.Error != nil {
		t.Fatalf("Produce: %v", resp.Error)
	}
}

func readN(t *testing.T, cfg kafka.ReaderConfig, n int) []string {
	t.Helper()
	r := kafka.NewReader(cfg)
	defer r.Close()
	var got []string
	for len(got) < n {
		m, err := r.ReadMessage(ctx(t))
		if err != nil {
			t.Fatalf("ReadMessage after %d of %d: %v", len(got), n, err)
		}
		got = append(got, string(m.Value))
	}
	return got
}

// TestKafkaGo is the contract the rest of the project builds on: kafka-go's
// admin client, produce path and Reader all work against the embedded broker.
func TestKafkaGo(t *testing.T) {
	b := start(t)
	addrs := b.Addrs()
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.1:") {
		t.Fatalf("Addrs() = %v, want one 127.0.0.1 address", addrs)
	}
	client := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second}
	createTopic(t, client, "greetings", 3)

	meta, err := client.Metadata(ctx(t), &kafka.MetadataRequest{Topics: []string{"greetings"}})
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	if len(meta.Topics) != 1 || len(meta.Topics[0].Partitions) != 3 {
		t.Fatalf("Metadata topics = %+v, want greetings with 3 partitions", meta.Topics)
	}

	produce(t, client, "greetings", "hello", "world")
	got := readN(t, kafka.ReaderConfig{Brokers: addrs, Topic: "greetings", Partition: 0, MaxWait: 100 * time.Millisecond}, 2)
	if strings.Join(got, ",") != "hello,world" {
		t.Fatalf("read %q, want hello,world", got)
	}

	// A consumer group reads the same records and commits.
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: "greetings", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	if err := w.WriteMessages(ctx(t), kafka.Message{Value: []byte("via writer")}); err != nil {
		t.Fatalf("Writer: %v", err)
	}
	_ = w.Close()
	got = readN(t, kafka.ReaderConfig{
		Brokers: addrs, Topic: "greetings", GroupID: "g1", StartOffset: kafka.FirstOffset,
		MaxWait: 100 * time.Millisecond, SessionTimeout: 6 * time.Second,
	}, 3)
	if len(got) != 3 {
		t.Fatalf("group read %q", got)
	}
}

func TestNoAutoTopicCreation(t *testing.T) {
	b := start(t)
	client := &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Timeout: 5 * time.Second}

	meta, err := client.Metadata(ctx(t), &kafka.MetadataRequest{Topics: []string{"nobody-created-me"}})
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	if len(meta.Topics) != 1 || !errors.Is(meta.Topics[0].Error, kafka.UnknownTopicOrPartition) {
		t.Fatalf("Metadata for a missing topic = %+v, want UnknownTopicOrPartition", meta.Topics)
	}

	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), Topic: "nobody-created-me", AllowAutoTopicCreation: true, MaxAttempts: 1, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx(t), kafka.Message{Value: []byte("x")}); err == nil {
		t.Fatal("writing to a topic that was never created succeeded; the broker must not auto-create topics")
	}
	meta, err = client.Metadata(ctx(t), &kafka.MetadataRequest{})
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	for _, tp := range meta.Topics {
		if tp.Name == "nobody-created-me" {
			t.Fatal("topic was auto-created")
		}
	}
}

func TestWithPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	b := start(t, embedded.WithPort(port))
	if want := "127.0.0.1:" + strconv.Itoa(port); b.Addrs()[0] != want {
		t.Fatalf("Addrs() = %v, want %s", b.Addrs(), want)
	}
	if _, err := embedded.Start(embedded.WithPort(port)); err == nil {
		t.Fatal("a second broker on the same port started")
	}
	if _, err := embedded.Start(embedded.WithPort(70000)); err == nil {
		t.Fatal("port 70000 accepted")
	}
}

func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b1, err := embedded.Start(embedded.WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	client := &kafka.Client{Addr: kafka.TCP(b1.Addrs()...), Timeout: 5 * time.Second}
	createTopic(t, client, "durable", 1)
	produce(t, client, "durable", "kept")
	b1.Close()
	b1.Close() // idempotent

	b2 := start(t, embedded.WithDataDir(dir))
	got := readN(t, kafka.ReaderConfig{Brokers: b2.Addrs(), Topic: "durable", MaxWait: 100 * time.Millisecond}, 1)
	if got[0] != "kept" {
		t.Fatalf("after restart read %q, want kept", got)
	}
}

func TestSASL(t *testing.T) {
	b := start(t,
		embedded.WithSASL(embedded.SASLPlain, "alice", "secret"),
		embedded.WithSASL(embedded.SASLScramSHA512, "bob", "hunter2"),
	)
	scramMech, err := scram.Mechanism(scram.SHA512, "bob", "hunter2")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		tr     *kafka.Transport
		wantOK bool
	}{
		"plain":     {&kafka.Transport{SASL: plain.Mechanism{Username: "alice", Password: "secret"}}, true},
		"scram":     {&kafka.Transport{SASL: scramMech}, true},
		"wrong":     {&kafka.Transport{SASL: plain.Mechanism{Username: "alice", Password: "nope"}}, false},
		"anonymous": {&kafka.Transport{}, false},
	} {
		t.Run(name, func(t *testing.T) {
			client := &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Timeout: 3 * time.Second, Transport: tc.tr}
			c, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			_, err := client.Metadata(c, &kafka.MetadataRequest{})
			if tc.wantOK && err != nil {
				t.Fatalf("Metadata: %v", err)
			}
			if !tc.wantOK && err == nil {
				t.Fatal("Metadata succeeded without valid credentials")
			}
		})
	}
	if _, err := embedded.Start(embedded.WithSASL("GSSAPI", "x", "y")); err == nil {
		t.Fatal("unknown SASL mechanism accepted")
	}
}

func TestTLS(t *testing.T) {
	cert, pool := kafkatest.SelfSigned(t)
	b := start(t, embedded.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	client := &kafka.Client{
		Addr:      kafka.TCP(b.Addrs()...),
		Timeout:   5 * time.Second,
		Transport: &kafka.Transport{TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}},
	}
	createTopic(t, client, "secure", 1)
	if _, err := embedded.Start(embedded.WithTLS(&tls.Config{})); err == nil {
		t.Fatal("WithTLS without a certificate accepted")
	}
}

func TestWithLogger(t *testing.T) {
	var buf syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := start(t, embedded.WithLogger(logger))

	// A truncated Metadata request (header only, no body) makes the broker
	// log that it could not parse the request and drop the connection.
	conn, err := net.Dial("tcp", b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := []byte{0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff}
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Read(make([]byte, 1)) // returns when the broker hangs up

	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "unable to parse request") {
		if time.Now().After(deadline) {
			t.Fatalf("the broker's log line did not reach the slog logger; got:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(buf.String(), "component=embedded-kafka") || !strings.Contains(buf.String(), "level=DEBUG") {
		t.Fatalf("log line lacks component or level:\n%s", buf.String())
	}
}
