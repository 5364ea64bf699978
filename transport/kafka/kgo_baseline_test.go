package kafka_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/internal/loadtest"
)

// kgoEcho is a baseline for the transport, not a transport: the same
// request/reply round trip over the same embedded broker, written directly
// on franz-go's kgo client with nothing of purista's around it (no
// deadlines, metadata, dedup, ordering by key or per-request commits). It
// tells how much of a call's cost is the Kafka client library's.
type kgoEcho struct {
	cli     *kgo.Client
	replyTo []byte
	mu      sync.Mutex
	pending map[string]chan *kgo.Record
}

func kgoHeader(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

func newKgoEcho(tb testing.TB, brokers []string, prefix string) *kgoEcho {
	req, reply := prefix+"kgo.req", prefix+"kgo.reply"
	kafkatest.CreateTopic(tb, brokers, req, 3)
	kafkatest.CreateTopic(tb, brokers, reply, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	srv, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(prefix+"kgo"), kgo.ConsumeTopics(req),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		tb.Fatal(err)
	}
	cli, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(req), kgo.ProducerLinger(0),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{reply: {0: kgo.NewOffset().AtEnd()}}))
	if err != nil {
		tb.Fatal(err)
	}
	e := &kgoEcho{cli: cli, pending: map[string]chan *kgo.Record{}}
	tb.Cleanup(func() {
		cancel()
		loops.Wait()
		srv.Close()
		cli.Close()
	})
	loops.Add(2)
	go func() { // the server: echo every request to its reply topic
		defer loops.Done()
		for ctx.Err() == nil {
			srv.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				var in testingv1.EchoRequest
				_ = proto.Unmarshal(r.Value, &in)
				out, _ := proto.Marshal(&testingv1.EchoResponse{Message: in.GetMessage(), Payload: in.GetPayload()})
				srv.Produce(ctx, &kgo.Record{Topic: string(kgoHeader(r, "reply-to")), Value: out,
					Headers: []kgo.RecordHeader{{Key: "id", Value: kgoHeader(r, "id")}}}, nil)
			})
		}
	}()
	go func() { // the client's reply reader
		defer loops.Done()
		for ctx.Err() == nil {
			cli.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				e.mu.Lock()
				ch := e.pending[string(kgoHeader(r, "id"))]
				e.mu.Unlock()
				if ch != nil {
					ch <- r
				}
			})
		}
	}()
	e.replyTo = []byte(reply)
	for deadline := time.Now().Add(30 * time.Second); ; { // the group is joined
		if err := e.call(ctx, 2*time.Second); err == nil {
			break
		} else if time.Now().After(deadline) {
			tb.Fatalf("kgo baseline: %v", err)
		}
	}
	return e
}

func (e *kgoEcho) call(ctx context.Context, timeout time.Duration) error {
	var idb [16]byte
	_, _ = rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	ch := make(chan *kgo.Record, 1)
	e.mu.Lock()
	e.pending[id] = ch
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.pending, id)
		e.mu.Unlock()
	}()
	body, _ := proto.Marshal(&testingv1.EchoRequest{Payload: benchPayload})
	failed := make(chan error, 1)
	e.cli.Produce(ctx, &kgo.Record{Value: body, Headers: []kgo.RecordHeader{
		{Key: "id", Value: []byte(id)}, {Key: "reply-to", Value: e.replyTo},
		{Key: "method", Value: []byte(testingv1.EchoService_Echo_FullMethodName)},
	}}, func(_ *kgo.Record, err error) {
		if err != nil {
			failed <- err
		}
	})
	select {
	case r := <-ch:
		var out testingv1.EchoResponse
		return proto.Unmarshal(r.Value, &out)
	case err := <-failed:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("no reply within %v", timeout)
	}
}

// echo makes one call bounded by 10 s.
func (e *kgoEcho) echo() error { return e.call(context.Background(), 10*time.Second) }

// throughput makes n calls with inflight in flight and returns calls per second.
func (e *kgoEcho) throughput(tb testing.TB, n, inflight int) float64 {
	rps, err := loadtest.Rate(n, inflight, time.Minute, e.echo)
	if err != nil {
		tb.Fatalf("kgo baseline: %v", err)
	}
	return rps
}

// BenchmarkTransportVsKgo measures, in alternating rounds, the Kafka
// transport and the kgoEcho baseline at 64 calls in flight on the embedded
// broker, and prints the transport's rate as a share of the baseline's,
// with the CPU per call of each. Run it with -benchtime=1x.
func BenchmarkTransportVsKgo(b *testing.B) {
	brokers := kafkatest.Embedded(b)
	k := kafkaEcho(b, brokers)
	base := newKgoEcho(b, brokers, kafkatest.TopicName(b)+".")
	const rounds, calls, inflight = 9, 5000, 64
	var kRPS, bRPS, kCPU, bCPU []float64
	measure := func(f func() float64) (float64, float64) {
		c0 := loadtest.CPUTime()
		rps := f()
		return rps, float64((loadtest.CPUTime() - c0).Microseconds()) / calls
	}
	for range b.N {
		for range rounds {
			r, c := measure(func() float64 { return throughput(b, k, calls, inflight) })
			kRPS, kCPU = append(kRPS, r), append(kCPU, c)
			r, c = measure(func() float64 { return base.throughput(b, calls, inflight) })
			bRPS, bCPU = append(bRPS, r), append(bCPU, c)
		}
	}
	b.ReportMetric(loadtest.Median(kRPS), "kafka-calls/s")
	b.ReportMetric(loadtest.Median(bRPS), "kgo-calls/s")
	kgoFiguresOnce.Do(func() {
		fmt.Printf("figure: kafka_rps64_vs_kgo_baseline %.2f\n", loadtest.Median(kRPS)/loadtest.Median(bRPS))
		fmt.Printf("figure: kafka_cpu_us_per_call %.1f\n", loadtest.Median(kCPU))
		fmt.Printf("figure: kgo_baseline_cpu_us_per_call %.1f\n", loadtest.Median(bCPU))
	})
}

var kgoFiguresOnce sync.Once
