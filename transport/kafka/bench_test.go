package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/inproc"
	"github.com/purista-go/purista/transport/kafka"
)

// benchPayload is the request payload of every benchmark: 256 bytes.
var benchPayload = bytes.Repeat([]byte("x"), 256)

// grpcEcho serves the Echo service over direct gRPC on loopback.
func grpcEcho(tb testing.TB) testingv1.EchoServiceClient {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	gs := grpc.NewServer()
	testingv1.RegisterEchoServiceServer(gs, &conformance.EchoServer{Name: "grpc"})
	go func() { _ = gs.Serve(lis) }()
	tb.Cleanup(gs.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return testingv1.NewEchoServiceClient(cc)
}

// serveEcho serves the Echo service over the Kafka transport on brokers,
// in an env of its own, and returns a client that has had an answer: the
// server has joined its group.
func serveEcho(tb testing.TB, brokers []string) (*env, *server, *kafka.ClientConn, testingv1.EchoServiceClient) {
	e := newEnv(tb, brokers)
	srv := e.Server(tb, conformance.Options{}).(*server)
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "kafka"})
	srv.Start(tb)
	tb.Cleanup(srv.Stop)
	conn := e.Client(tb, conformance.Options{}).(*kafka.ClientConn)
	c := testingv1.NewEchoServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "warm-up"}); err != nil {
		tb.Fatalf("warm-up call: %v", err)
	}
	return e, srv, conn, c
}

// kafkaEcho serves the Echo service over the Kafka transport.
func kafkaEcho(tb testing.TB, brokers []string) testingv1.EchoServiceClient {
	_, srv, conn, c := serveEcho(tb, brokers)
	lastKafka.conn, lastKafka.srv = conn, srv.Server
	return c
}

var lastKafka struct {
	conn *kafka.ClientConn
	srv  *kafka.Server
}

// batching returns the client's produce requests and records, then the
// server's, of the last Kafka pair kafkaEcho made.
func batching() [4]int64 {
	if lastKafka.conn == nil {
		return [4]int64{}
	}
	c, s := lastKafka.conn.Stats(), lastKafka.srv.Stats()
	return [4]int64{c.ProduceRequests, c.RecordsProduced, s.ProduceRequests, s.RecordsProduced}
}

func inprocEcho(tb testing.TB) testingv1.EchoServiceClient {
	ch := inproc.New()
	testingv1.RegisterEchoServiceServer(ch, &conformance.EchoServer{Name: "inproc"})
	tb.Cleanup(func() { _ = ch.Close() })
	return testingv1.NewEchoServiceClient(ch)
}

func call(tb testing.TB, c testingv1.EchoServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Payload: benchPayload}); err != nil {
		tb.Fatal(err)
	}
}

// sequentialP50 makes n calls one after another and returns the median latency.
func sequentialP50(tb testing.TB, c testingv1.EchoServiceClient, n int) time.Duration {
	lat := make([]time.Duration, n)
	for i := range lat {
		start := time.Now()
		call(tb, c)
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	return lat[n/2]
}

// throughput makes n calls with inflight in flight and returns calls per second.
func throughput(tb testing.TB, c testingv1.EchoServiceClient, n, inflight int) float64 {
	return throughputOf(tb, c, n, inflight, call)
}

// throughputOf is throughput with calls made by call.
func throughputOf(tb testing.TB, c testingv1.EchoServiceClient, n, inflight int, call func(testing.TB, testingv1.EchoServiceClient)) float64 {
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				call(tb, c)
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkUnary measures one call at a time (ns/op is the mean latency)
// and 64 calls in flight, per transport.
func BenchmarkUnary(b *testing.B) {
	brokers := kafkatest.Embedded(b)
	clients := []struct {
		name string
		c    testingv1.EchoServiceClient
	}{
		{"grpc", grpcEcho(b)},
		{"inproc", inprocEcho(b)},
		{"kafka-embedded", kafkaEcho(b, brokers)},
	}
	for _, tc := range clients {
		b.Run(tc.name+"/sequential", func(b *testing.B) {
			for b.Loop() {
				call(b, tc.c)
			}
		})
		b.Run(tc.name+"/inflight64", func(b *testing.B) {
			before := batching()
			cpu0 := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/call") }()
			b.SetParallelism(32) // 2 cores x 32 = 64 goroutines
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					call(b, tc.c)
				}
			})
			if tc.name == "kafka-embedded" {
				after := batching()
				b.ReportMetric(float64(after[1]-before[1])/float64(max(1, after[0]-before[0])), "requests/produce")
				b.ReportMetric(float64(after[3]-before[3])/float64(max(1, after[2]-before[2])), "replies/produce")
			}
		})
	}
}

var figuresOnce sync.Once

// BenchmarkKafkaVsGRPC measures the Kafka transport on the embedded broker
// and direct gRPC side by side, in alternating rounds, and prints the
// ratios of their medians as figure: lines. Its work is fixed: run it with
// -benchtime=1x.
func BenchmarkKafkaVsGRPC(b *testing.B) {
	brokers := kafkatest.Embedded(b)
	g, k := grpcEcho(b), kafkaEcho(b, brokers)
	const rounds, seqCalls, parCalls, inflight = 5, 300, 5000, 64
	var gP50, kP50, gRPS, kRPS []float64
	for range b.N {
		for range rounds {
			gP50 = append(gP50, float64(sequentialP50(b, g, seqCalls)))
			kP50 = append(kP50, float64(sequentialP50(b, k, seqCalls)))
			gRPS = append(gRPS, throughput(b, g, parCalls, inflight))
			kRPS = append(kRPS, throughput(b, k, parCalls, inflight))
		}
	}
	b.ReportMetric(median(kP50)/1e3, "kafka-p50-µs")
	b.ReportMetric(median(gP50)/1e3, "grpc-p50-µs")
	b.ReportMetric(median(kRPS), "kafka-calls/s")
	b.ReportMetric(median(gRPS), "grpc-calls/s")
	figuresOnce.Do(func() {
		fmt.Printf("figure: kafka_p50_us %.0f\n", median(kP50)/1e3)
		fmt.Printf("figure: grpc_p50_us %.0f\n", median(gP50)/1e3)
		fmt.Printf("figure: kafka_rps64 %.0f\n", median(kRPS))
		fmt.Printf("figure: grpc_rps64 %.0f\n", median(gRPS))
		fmt.Printf("figure: kafka_p50_vs_grpc %.2f\n", median(kP50)/median(gP50))
		fmt.Printf("figure: kafka_rps64_vs_grpc %.2f\n", median(kRPS)/median(gRPS))
	})
}

var keyedFiguresOnce sync.Once

// BenchmarkKeyedVsUnkeyed measures what an idempotency key costs a call on
// the embedded broker: keyed calls (each with a fresh key: a look-up of the
// store partition's offsets and a stored reply written before the reply)
// against unkeyed ones, one at a time and 64 in flight, in alternating
// rounds, and prints the ratios of their medians. Its work is fixed: run it
// with -benchtime=1x.
func BenchmarkKeyedVsUnkeyed(b *testing.B) {
	brokers := kafkatest.Embedded(b)
	k := kafkaEcho(b, brokers)
	const rounds, calls, parCalls, inflight = 5, 300, 5000, 64
	var keyed, unkeyed, keyedRPS, unkeyedRPS, keyedCPU, unkeyedCPU []float64
	var seq atomic.Int64
	run := time.Now().UnixNano()
	keyedCall := func(tb testing.TB, c testingv1.EchoServiceClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		key := kafka.IdempotencyKey(fmt.Sprintf("bench-%d-%d", run, seq.Add(1)))
		if _, err := c.Echo(ctx, &testingv1.EchoRequest{Payload: benchPayload}, key); err != nil {
			tb.Fatal(err)
		}
	}
	p50 := func(f func(testing.TB, testingv1.EchoServiceClient)) float64 {
		lat := make([]time.Duration, calls)
		for i := range lat {
			start := time.Now()
			f(b, k)
			lat[i] = time.Since(start)
		}
		slices.Sort(lat)
		return float64(lat[calls/2])
	}
	for range b.N {
		for range rounds {
			unkeyed = append(unkeyed, p50(call))
			keyed = append(keyed, p50(keyedCall))
			c0 := cpuTime()
			unkeyedRPS = append(unkeyedRPS, throughputOf(b, k, parCalls, inflight, call))
			c1 := cpuTime()
			keyedRPS = append(keyedRPS, throughputOf(b, k, parCalls, inflight, keyedCall))
			c2 := cpuTime()
			unkeyedCPU = append(unkeyedCPU, float64(c1-c0)/parCalls/1e3)
			keyedCPU = append(keyedCPU, float64(c2-c1)/parCalls/1e3)
		}
	}
	b.ReportMetric(median(keyed)/1e3, "keyed-p50-µs")
	b.ReportMetric(median(unkeyed)/1e3, "unkeyed-p50-µs")
	b.ReportMetric(median(keyedRPS), "keyed-calls/s")
	b.ReportMetric(median(unkeyedRPS), "unkeyed-calls/s")
	b.ReportMetric(median(keyedCPU), "keyed-cpu-µs/call")
	b.ReportMetric(median(unkeyedCPU), "unkeyed-cpu-µs/call")
	keyedFiguresOnce.Do(func() {
		fmt.Printf("figure: keyed_call_p50_us %.0f\n", median(keyed)/1e3)
		fmt.Printf("figure: unkeyed_call_p50_us %.0f\n", median(unkeyed)/1e3)
		fmt.Printf("figure: keyed_call_p50_vs_unkeyed %.2f\n", median(keyed)/median(unkeyed))
		fmt.Printf("figure: keyed_rps64 %.0f\n", median(keyedRPS))
		fmt.Printf("figure: keyed_rps64_vs_unkeyed %.2f\n", median(keyedRPS)/median(unkeyedRPS))
	})
}
