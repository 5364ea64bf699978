package kafka_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/internal/loadtest"
)

var realFiguresOnce sync.Once

// BenchmarkRealKafka measures the transport on the real Apache Kafka broker
// of PURISTA_KAFKA_BROKERS (make bench runs under scripts/kafka.sh when Java
// is present; skipped otherwise): latency one call at a time (p50 and p99
// of recorded per-call latencies) and calls per second at 64 in flight,
// beside the bare kgo echo (kgo_baseline_test.go) on the same broker, in
// alternating rounds. It prints the medians of the rounds as figure: lines.
// Its work is fixed: run it with -benchtime=1x.
func BenchmarkRealKafka(b *testing.B) {
	brokers := kafkatest.Real(b)
	k := kafkaEcho(b, brokers)
	base := newKgoEcho(b, brokers, kafkatest.TopicName(b)+".")
	// A call on real Kafka takes milliseconds: fewer calls per round than
	// on the embedded broker keep the benchmark within half a minute.
	const rounds, seqCalls, parCalls, inflight = 5, 600, 3000, 64
	var kP50, kP99, bP50, bP99, kRPS, bRPS []float64
	for range b.N {
		for range rounds {
			kLat := sequential(b, k, seqCalls)
			bLat, err := loadtest.Sequential(seqCalls, time.Minute, base.echo)
			if err != nil {
				b.Fatalf("kgo baseline: %v", err)
			}
			kP50, kP99 = append(kP50, float64(loadtest.Percentile(kLat, 0.5))), append(kP99, float64(loadtest.Percentile(kLat, 0.99)))
			bP50, bP99 = append(bP50, float64(loadtest.Percentile(bLat, 0.5))), append(bP99, float64(loadtest.Percentile(bLat, 0.99)))
			kRPS = append(kRPS, throughput(b, k, parCalls, inflight))
			bRPS = append(bRPS, base.throughput(b, parCalls, inflight))
		}
	}
	b.ReportMetric(loadtest.Median(kP50)/1e3, "kafka-p50-µs")
	b.ReportMetric(loadtest.Median(kP99)/1e3, "kafka-p99-µs")
	b.ReportMetric(loadtest.Median(bP50)/1e3, "kgo-p50-µs")
	b.ReportMetric(loadtest.Median(bP99)/1e3, "kgo-p99-µs")
	b.ReportMetric(loadtest.Median(kRPS), "kafka-calls/s")
	b.ReportMetric(loadtest.Median(bRPS), "kgo-calls/s")
	realFiguresOnce.Do(func() {
		fmt.Printf("figure: realkafka_p50_us %.0f\n", loadtest.Median(kP50)/1e3)
		fmt.Printf("figure: realkafka_p99_us %.0f\n", loadtest.Median(kP99)/1e3)
		fmt.Printf("figure: realkafka_rps64 %.0f\n", loadtest.Median(kRPS))
		fmt.Printf("figure: realkafka_kgo_baseline_p50_us %.0f\n", loadtest.Median(bP50)/1e3)
		fmt.Printf("figure: realkafka_kgo_baseline_p99_us %.0f\n", loadtest.Median(bP99)/1e3)
		fmt.Printf("figure: realkafka_kgo_baseline_rps64 %.0f\n", loadtest.Median(bRPS))
		fmt.Printf("figure: realkafka_rps64_vs_kgo_baseline %.2f\n", loadtest.Median(kRPS)/loadtest.Median(bRPS))
	})
}
