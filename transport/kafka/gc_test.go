package kafka_test

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	streamv1 "github.com/purista-go/purista/gen/purista/testing/stream/v1"
	"github.com/purista-go/purista/internal/conformance"
	streamconf "github.com/purista-go/purista/internal/conformance/stream"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// TestCollectIdleTopics deletes the reply topic of a client and the stream
// control topic of a server that died (their last records are an hour old)
// and keeps those of a live client and a live streaming server.
func TestCollectIdleTopics(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		live := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
		srv := e.Server(t, conformance.Options{})
		streamv1.RegisterStreamServiceServer(srv, streamconf.NewServer())
		srv.Start(t)
		t.Cleanup(srv.Stop)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A finished stream: the server has its control topic.
		st, err := streamv1.NewStreamServiceClient(live).Count(ctx, &streamv1.CountRequest{Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, err = st.Recv()
		}
		if err != io.EOF {
			t.Fatalf("stream: %v", err)
		}

		deadReply := e.prefix + "purista.reply.crashed-instance"
		deadStream := e.prefix + "purista.stream.crashed-instance"
		for _, dead := range []string{deadReply, deadStream} {
			kafkatest.CreateTopic(t, brokers, dead, 1)
			w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), Topic: dead, BatchSize: 1, Transport: &kafkago.Transport{}}
			err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("old record"), Time: time.Now().Add(-time.Hour)})
			_ = w.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		want := []string{deadReply, deadStream}
		opts := []kafka.Option{kafka.WithTopicPrefix(e.prefix), kafka.WithLogger(quiet)}
		would, err := kafka.CollectIdleTopics(ctx, brokers, 10*time.Minute, true, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(would, want) {
			t.Fatalf("dry run would delete %v, want only %v (live: %s and the server's control topic)", would, want, live.ReplyTopic())
		}
		deleted, err := kafka.CollectIdleTopics(ctx, brokers, 10*time.Minute, false, opts...)
		if err != nil || !slices.Equal(deleted, want) {
			t.Fatalf("deleted %v, %v; want %v", deleted, err, want)
		}
		if _, err := kafka.CollectIdleTopics(ctx, brokers, time.Minute, true, opts...); err == nil {
			t.Fatal("an idle time shorter than the keepalive period was accepted")
		}
	})
}
