package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/purista-go/purista"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// TestCompression: the records a client and a server write are compressed
// as WithCompression says (snappy without it), as another Kafka client
// (franz-go) reads them, and calls go through with every compression.
func TestCompression(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	// Kafka's compression attribute codes.
	codes := map[kafka.Compression]kgo.CompressionCodecType{"": 2, kafka.CompressionNone: 0, kafka.CompressionGzip: 1,
		kafka.CompressionSnappy: 2, kafka.CompressionLZ4: 3, kafka.CompressionZstd: 4}
	for _, c := range []kafka.Compression{"", kafka.CompressionNone, kafka.CompressionGzip, kafka.CompressionSnappy, kafka.CompressionLZ4, kafka.CompressionZstd} {
		name := string(c)
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, brokers)
			if c != "" {
				e.options = []kafka.Option{kafka.WithCompression(c)}
			}
			srv := e.Server(t, conformance.Options{})
			testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "kafka"})
			srv.Start(t)
			t.Cleanup(srv.Stop)
			conn := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{Message: "compressed", Payload: benchPayload})
			if err != nil || out.GetMessage() != "compressed" {
				t.Fatalf("Echo = %v, %v", out, err)
			}
			request := e.prefix + purista.DefaultRequestTopic(testingv1.EchoService_ServiceDesc.ServiceName)
			for _, topic := range []string{request, conn.ReplyTopic()} {
				if got := lastCompression(t, brokers, topic); got != codes[c] {
					t.Errorf("records on %s are compressed with codec %d, want %d (%q)", topic, got, codes[c], c)
				}
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := kafka.Dial(ctx, brokers, kafka.WithCompression("brotli"))
		if err == nil || !strings.Contains(err.Error(), `compression "brotli" is not supported: use snappy, lz4, zstd, gzip or none`) {
			t.Fatalf("Dial with an unknown compression: %v", err)
		}
	})
}

// lastCompression returns the compression codec of the newest record
// batch holding a record with a value on topic.
func lastCompression(t *testing.T, brokers []string, topic string) kgo.CompressionCodecType {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var codec kgo.CompressionCodecType = -1
	for codec < 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if len(r.Value) > 0 {
				codec = kgo.CompressionCodecType(r.Attrs.CompressionType())
			}
		})
	}
	if codec < 0 {
		t.Fatalf("no record with a value on %s", topic)
	}
	return codec
}
