package kafka_test

import (
	"context"
	"slices"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// TestCollectReplyTopics deletes the reply topic of a client that died
// (its last record is an hour old) and keeps a live client's.
func TestCollectReplyTopics(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		live := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
		dead := e.prefix + "purista.reply.crashed-instance"
		kafkatest.CreateTopic(t, brokers, dead, 1)
		w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), Topic: dead, BatchSize: 1, Transport: &kafkago.Transport{}}
		defer w.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("old reply"), Time: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		opts := []kafka.Option{kafka.WithTopicPrefix(e.prefix), kafka.WithLogger(quiet)}
		would, err := kafka.CollectReplyTopics(ctx, brokers, 10*time.Minute, true, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(would, []string{dead}) {
			t.Fatalf("dry run would delete %v, want only %s (live: %s)", would, dead, live.ReplyTopic())
		}
		deleted, err := kafka.CollectReplyTopics(ctx, brokers, 10*time.Minute, false, opts...)
		if err != nil || !slices.Equal(deleted, []string{dead}) {
			t.Fatalf("deleted %v, %v; want %s", deleted, err, dead)
		}
		if _, err := kafka.CollectReplyTopics(ctx, brokers, time.Minute, true, opts...); err == nil {
			t.Fatal("an idle time shorter than the keepalive period was accepted")
		}
	})
}
