package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// The records are written by hand, as docs/protocol.md specifies them: a
// subscriber's service would link its contract into this test binary and
// change what the other commands list. The conformance suite covers the
// subscriber side (transport/kafka TestEvents).
const (
	dlqService  = "shop.v1.BillingService"
	dlqTopic    = "purista.dlq." + dlqService
	eventTopic  = "purista.event.shop.v1.OrderPlaced"
	dlqEvent    = "shop.v1.OrderPlaced"
	subscriber  = "/shop.v1.BillingService/ChargeOrder"
	eventIDText = "0123456789abcdef0123456789abcdef"
)

func createTopics(t *testing.T, addr string, topics ...string) *kafkago.Client {
	t.Helper()
	kc := &kafkago.Client{Addr: kafkago.TCP(strings.Split(addr, ",")...), Timeout: 10 * time.Second}
	req := &kafkago.CreateTopicsRequest{}
	for _, tp := range topics {
		req.Topics = append(req.Topics, kafkago.TopicConfig{Topic: tp, NumPartitions: 3, ReplicationFactor: 1})
	}
	resp, err := kc.CreateTopics(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for tp, err := range resp.Errors {
		if err != nil {
			t.Fatalf("create %s: %v", tp, err)
		}
	}
	return kc
}

func TestDLQ(t *testing.T) {
	addr := broker(t)
	if _, stderr, code := cli(t, "dlq", "list", dlqService, "--brokers", addr); code != 1 || !strings.Contains(stderr, "dead-letter topic "+dlqTopic+" does not exist") {
		t.Errorf("dlq list without the topic: exit %d, %s", code, stderr)
	}
	kc := createTopics(t, addr, dlqTopic, eventTopic)
	h := func(k, v string) kafkago.Header { return kafkago.Header{Key: k, Value: []byte(v)} }
	_, err := kc.Produce(context.Background(), &kafkago.ProduceRequest{
		Topic: dlqTopic, Partition: 1, RequiredAcks: kafkago.RequireAll,
		Records: kafkago.NewRecordReader(kafkago.Record{
			Key:   kafkago.NewBytes([]byte("o-1")),
			Value: kafkago.NewBytes([]byte{0x0a, 0x03, 'o', '-', '1'}),
			Headers: []kafkago.Header{
				h("purista-version", "1"), h("purista-id", eventIDText), h("purista-event", dlqEvent),
				h("content-type", "application/protobuf"), h("purista-md-x-tenant", "acme"),
				h("purista-dead-letter-reason", "card declined"), h("purista-dead-letter-status", "9"),
				h("purista-dead-letter-subscriber", subscriber), h("purista-dead-letter-group", "purista.sub."+dlqService+"."+dlqEvent),
				h("purista-dead-letter-attempts", "5"), h("purista-dead-letter-topic", eventTopic),
				h("purista-dead-letter-partition", "2"), h("purista-dead-letter-offset", "41"),
				h("purista-dead-letter-time", "1790000000000"),
			},
		}),
	})
	if err != nil {
		t.Fatal(err)
	}

	out, stderr, code := cli(t, "dlq", "list", dlqService, "--brokers", addr)
	t.Logf("purista dlq list %s:\n%s", dlqService, out)
	for _, want := range []string{dlqTopic + "/1/0", dlqEvent, eventIDText, subscriber, "  5  ", "FailedPrecondition: card declined", "1 dead letters"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("dlq list: exit %d, lacks %q:\n%s%s", code, want, out, stderr)
		}
	}
	jsonOut, stderr, code := cli(t, "dlq", "list", dlqService, "--json", "--brokers", addr)
	var letter struct {
		ID                string `json:"id"`
		Attempts          int    `json:"attempts"`
		Code              string `json:"code"`
		OriginalPartition int    `json:"original_partition"`
	}
	if code != 0 || json.Unmarshal([]byte(jsonOut), &letter) != nil || letter.ID != dlqTopic+"/1/0" || letter.Attempts != 5 || letter.Code != "FailedPrecondition" || letter.OriginalPartition != 2 {
		t.Fatalf("dlq list --json: exit %d, %q (%s)", code, jsonOut, stderr)
	}

	if _, _, code := cli(t, "dlq", "redrive", dlqService, "--brokers", addr); code != 2 {
		t.Errorf("dlq redrive without ids or --all: exit %d, want 2", code)
	}
	if _, stderr, code := cli(t, "dlq", "redrive", dlqService, "no-such/0/0", "--brokers", addr); code != 2 || !strings.Contains(stderr, "no dead letter no-such/0/0") {
		t.Errorf("dlq redrive of an unknown id: exit %d, %s", code, stderr)
	}
	out, stderr, code = cli(t, "dlq", "redrive", dlqService, letter.ID, "--brokers", addr)
	if code != 0 || !strings.Contains(out, "1 dead letters re-driven") {
		t.Fatalf("dlq redrive: exit %d: %s%s", code, out, stderr)
	}

	// The event is back on its partition, for the failed subscriber only.
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: strings.Split(addr, ","), Topic: eventTopic, Partition: 2, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read the re-driven event: %v", err)
	}
	got := map[string]string{}
	for _, h := range m.Headers {
		got[h.Key] = string(h.Value)
	}
	if string(m.Key) != "o-1" || got["purista-id"] != eventIDText || got["purista-md-x-tenant"] != "acme" ||
		got["purista-redrive-for"] != subscriber || got["purista-redrive-of"] != letter.ID || got["purista-dead-letter-reason"] != "" {
		t.Errorf("re-driven record: key %q, headers %v", m.Key, got)
	}

	// Re-driven, it is no longer pending: listed only with --all, and not
	// re-driven a second time.
	out, stderr, code = cli(t, "dlq", "list", dlqService, "--brokers", addr)
	if code != 0 || strings.Contains(out, dlqTopic+"/1/0") || !strings.Contains(out, "0 pending dead letters (1 re-driven not shown") {
		t.Errorf("dlq list after the re-drive: exit %d:\n%s%s", code, out, stderr)
	}
	out, stderr, code = cli(t, "dlq", "list", dlqService, "--all", "--brokers", addr)
	if code != 0 || !strings.Contains(out, "RE-DRIVEN") || !strings.Contains(out, dlqTopic+"/1/0") || !strings.Contains(out, "1 dead letters") {
		t.Errorf("dlq list --all after the re-drive: exit %d:\n%s%s", code, out, stderr)
	}
	if _, stderr, code := cli(t, "dlq", "redrive", dlqService, letter.ID, "--brokers", addr); code != 1 || !strings.Contains(stderr, "was re-driven already") {
		t.Errorf("second dlq redrive of %s: exit %d, %s", letter.ID, code, stderr)
	}
	out, stderr, code = cli(t, "dlq", "redrive", dlqService, "--all", "--brokers", addr)
	if code != 0 || !strings.Contains(out, "0 dead letters re-driven") {
		t.Errorf("dlq redrive --all after the re-drive: exit %d: %s%s", code, out, stderr)
	}
	// Still exactly one copy of the event went back.
	rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
	defer rcancel()
	if m, err := r.ReadMessage(rctx); err == nil {
		t.Errorf("a second copy of the event was re-driven: %v", m.Headers)
	}
}

// TestDLQOfContracts: without a service, dlq list reads the dead letters
// of every subscriber of the contracts.
func TestDLQOfContracts(t *testing.T) {
	addr := broker(t)
	img := image(t)
	if _, stderr, code := cli(t, "topics", "ensure", "--image", img, "--brokers", addr); code != 0 {
		t.Fatal(stderr)
	}
	out, stderr, code := cli(t, "dlq", "list", "--image", img, "--brokers", addr)
	if code != 0 || !strings.Contains(out, "0 dead letters") {
		t.Errorf("dlq list of the example contracts: exit %d\n%s%s", code, out, stderr)
	}
	_, stderr, code = cli(t, "dlq", "list", "--image", image(t, "users/v1/users.proto"), "--brokers", addr)
	if code != 1 || !strings.Contains(stderr, "no service in") || !strings.Contains(stderr, "subscribes to an event") {
		t.Errorf("dlq list of contracts without subscribers: exit %d\n%s", code, stderr)
	}
}
