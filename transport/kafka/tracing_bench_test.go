package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/internal/loadtest"
	"github.com/purista-go/purista/transport/kafka"
)

// discardExporter takes spans and drops them: what tracing costs the
// process without an exporter's own cost.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// servePair serves impl as the Echo service in env e with extra options
// for both ends, and returns a client of it.
func servePair(tb testing.TB, e *env, impl testingv1.EchoServiceServer, extra ...kafka.Option) *kafka.ClientConn {
	sopts := []kafka.ServerOption{kafka.WithGroupTimings(250*time.Millisecond, 6*time.Second)}
	var copts []kafka.ClientOption
	for _, o := range append(e.common(), extra...) {
		sopts, copts = append(sopts, o), append(copts, o)
	}
	ks, err := kafka.NewServer(e.brokers, sopts...)
	if err != nil {
		tb.Fatal(err)
	}
	testingv1.RegisterEchoServiceServer(ks, impl)
	srv := &server{Server: ks}
	srv.Start(tb)
	tb.Cleanup(srv.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.Dial(ctx, e.brokers, copts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

// echoWith serves the Echo service on brokers with extra options for both
// ends, in an env of its own, and returns a client that has had an answer.
func echoWith(tb testing.TB, brokers []string, extra ...kafka.Option) testingv1.EchoServiceClient {
	c := testingv1.NewEchoServiceClient(servePair(tb, newEnv(tb, brokers), &conformance.EchoServer{Name: "kafka"}, extra...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "warm-up"}); err != nil {
		tb.Fatalf("warm-up call: %v", err)
	}
	return c
}

var tracedFiguresOnce sync.Once

// BenchmarkTracedVsUntraced measures what tracing costs a call on the
// embedded broker: a client and server with an SDK TracerProvider (every
// span sampled and recorded: client, send, process, server and reply
// spans, batched to an exporter that drops them) against a pair with none
// (the OpenTelemetry global no-op), in alternating rounds, and prints the
// ratios of their medians. Its work is fixed: run it with -benchtime=1x.
func BenchmarkTracedVsUntraced(b *testing.B) {
	brokers := kafkatest.Embedded(b)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	// A tenth of the traces sampled, as a busy service would run: the
	// unsampled calls carry their context on and record nothing.
	tp10 := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))))
	b.Cleanup(func() { _ = tp10.Shutdown(context.Background()) })
	off := echoWith(b, brokers)
	on := echoWith(b, brokers, kafka.WithTracerProvider(tp))
	on10 := echoWith(b, brokers, kafka.WithTracerProvider(tp10))
	const rounds, seqCalls, parCalls, inflight = 5, 300, 5000, 64
	var offP50, onP50, offRPS, onRPS, offCPU, onCPU, on10RPS, on10CPU []float64
	par := func(c testingv1.EchoServiceClient, rps, cpu *[]float64) {
		cpu0 := loadtest.CPUTime()
		*rps = append(*rps, throughput(b, c, parCalls, inflight))
		*cpu = append(*cpu, float64(loadtest.CPUTime()-cpu0)/parCalls/1e3)
	}
	for range b.N {
		for range rounds {
			offP50 = append(offP50, float64(loadtest.Percentile(sequential(b, off, seqCalls), 0.5)))
			onP50 = append(onP50, float64(loadtest.Percentile(sequential(b, on, seqCalls), 0.5)))
			par(off, &offRPS, &offCPU)
			par(on, &onRPS, &onCPU)
			par(on10, &on10RPS, &on10CPU)
		}
	}
	b.ReportMetric(loadtest.Median(onP50)/1e3, "traced-p50-µs")
	b.ReportMetric(loadtest.Median(offP50)/1e3, "untraced-p50-µs")
	b.ReportMetric(loadtest.Median(onRPS), "traced-calls/s")
	b.ReportMetric(loadtest.Median(offRPS), "untraced-calls/s")
	b.ReportMetric(loadtest.Median(onCPU), "traced-cpu-µs/call")
	b.ReportMetric(loadtest.Median(offCPU), "untraced-cpu-µs/call")
	tracedFiguresOnce.Do(func() {
		fmt.Printf("figure: traced_p50_us %.0f\n", loadtest.Median(onP50)/1e3)
		fmt.Printf("figure: untraced_p50_us %.0f\n", loadtest.Median(offP50)/1e3)
		fmt.Printf("figure: traced_p50_vs_untraced %.2f\n", loadtest.Median(onP50)/loadtest.Median(offP50))
		fmt.Printf("figure: traced_rps64_vs_untraced %.2f\n", loadtest.Median(onRPS)/loadtest.Median(offRPS))
		fmt.Printf("figure: traced_cpu_us_per_call %.1f\n", loadtest.Median(onCPU))
		fmt.Printf("figure: untraced_cpu_us_per_call %.1f\n", loadtest.Median(offCPU))
		fmt.Printf("figure: traced_sampled10pct_rps64_vs_untraced %.2f\n", loadtest.Median(on10RPS)/loadtest.Median(offRPS))
	})
}
