package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	goruntime "runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/internal/loadtest"
)

// benchTarget is one HTTP endpoint chain measured by BenchmarkGateway.
type benchTarget struct {
	name string
	url  string
	p50  time.Duration
	rps  float64
}

var benchClient = &http.Client{Transport: &http.Transport{
	MaxIdleConns:        256,
	MaxIdleConnsPerHost: 256,
	IdleConnTimeout:     time.Minute,
}}

// benchBody is an Echo request with a 256-byte payload.
var benchBody = func() []byte {
	b, _ := json.Marshal(map[string]any{"message": "bench", "payload": bytes.Repeat([]byte{0xa5}, 256)})
	return b
}()

func benchPost(url string) error {
	res, err := benchClient.Post(url+"/v1/echo", "application/json", bytes.NewReader(benchBody))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// warmUp calls url until it answers 200 (the Kafka server joins its
// consumer group first) and then with 64 in flight.
func warmUp(b *testing.B, url string) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for benchPost(url) != nil {
		if time.Now().After(deadline) {
			b.Fatalf("%s did not answer within 60s", url)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Open the 64 connections the concurrent run uses, and warm both ends.
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if benchPost(url) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("warm-up: %d requests failed", f)
	}
}

// Sizes of one measurement round per target.
const (
	benchSeqCalls      = 300
	benchInflight      = 64
	benchInflightCalls = 3000
	benchMinRounds     = 7
)

// BenchmarkGateway compares, in one run, the purista gateway calling the
// Echo service over Kafka (embedded broker) with grpc-gateway in front of
// direct gRPC, same service and a 256-byte payload: p50 latency with one
// request in flight and throughput with 64 in flight. The purista gateway
// over direct gRPC is measured as well, to separate the gateway's own cost
// from the transport's.
//
// One op is a round: every target, in an order rotated per round, answers
// 300 sequential calls and then 3000 calls with 64 in flight. At least 7
// rounds run. p50 is taken over all sequential calls of a target; the
// throughput figure is the median over rounds of the ratio within a round,
// whose targets ran back to back, so that load from other processes on the
// machine, which comes and goes, cancels out. It prints
//
//	figure: gateway_rps64_vs_grpcgateway <ratio>   (target ≥ 1.0)
//	figure: gateway_p50_vs_grpcgateway <ratio>     (target ≤ 3.0)
func BenchmarkGateway(b *testing.B) {
	ctx := context.Background()

	// grpc-gateway, stock settings, over a gRPC connection to a gRPC server.
	cc, _ := startGRPC(b)
	mux := runtime.NewServeMux()
	if err := testingv1.RegisterEchoServiceHandlerClient(ctx, mux, testingv1.NewEchoServiceClient(cc)); err != nil {
		b.Fatal(err)
	}
	grpcGW := &benchTarget{name: "grpcgateway-grpc", url: serve(b, mux)}

	// The purista gateway over the same gRPC connection.
	gwURL, _ := startGateway(b, cc)
	gwGRPC := &benchTarget{name: "gateway-grpc", url: gwURL}

	// The purista gateway over Kafka on the embedded broker.
	env := newKafkaEnv(kafkatest.Embedded(b))
	srv := env.Server(b, conformance.Options{})
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "kafka"})
	srv.Start(b)
	b.Cleanup(srv.Stop)
	kURL, _ := startGateway(b, env.dial(b))
	gwKafka := &benchTarget{name: "gateway-kafka", url: kURL}

	targets := []*benchTarget{grpcGW, gwGRPC, gwKafka}
	for _, tg := range targets {
		warmUp(b, tg.url)
	}
	rounds := max(b.N, benchMinRounds)
	lat := map[*benchTarget][]time.Duration{}
	rps := map[*benchTarget][]float64{}
	// CPU time of the whole process (HTTP client, gateway, transport,
	// broker, service) per request, and cores busy, in the 64-in-flight
	// phase: tells a CPU-bound target from one that waits.
	cpuPerReq := map[*benchTarget][]float64{}
	cores := map[*benchTarget][]float64{}
	b.ResetTimer()
	for r := range rounds {
		for i := range targets {
			tg := targets[(i+r)%len(targets)]
			for range benchSeqCalls {
				t0 := time.Now()
				if err := benchPost(tg.url); err != nil {
					b.Fatalf("%s: %v", tg.name, err)
				}
				lat[tg] = append(lat[tg], time.Since(t0))
			}
			goruntime.GC() // every target starts its phase with a collected heap
			cpu0, wall0 := loadtest.CPUTime(), time.Now()
			v, err := loadtest.Rate(benchInflightCalls, benchInflight, time.Minute, func() error { return benchPost(tg.url) })
			cpu := loadtest.CPUTime() - cpu0
			cpuPerReq[tg] = append(cpuPerReq[tg], float64(cpu.Nanoseconds())/1e3/benchInflightCalls)
			cores[tg] = append(cores[tg], float64(cpu)/float64(time.Since(wall0)))
			if err != nil {
				b.Fatalf("%s: %v", tg.name, err)
			}
			rps[tg] = append(rps[tg], v)
		}
	}
	b.StopTimer()
	for _, tg := range targets {
		l := lat[tg]
		slices.Sort(l)
		tg.p50 = l[len(l)/2]
		v := slices.Clone(rps[tg])
		slices.Sort(v)
		tg.rps = v[len(v)/2]
		fmt.Printf("gateway bench: %-17s p50 %7.1f µs  %7.0f req/s at %d in flight (%d rounds: %.0f..%.0f), %.0f µs CPU per request, %.2f cores busy\n",
			tg.name, float64(tg.p50.Nanoseconds())/1e3, tg.rps, benchInflight, rounds, v[0], v[len(v)-1], loadtest.Median(cpuPerReq[tg]), loadtest.Median(cores[tg]))
	}
	b.ReportMetric(float64(grpcGW.p50.Nanoseconds())/1e3, "grpcgw-p50-µs")
	b.ReportMetric(float64(gwKafka.p50.Nanoseconds())/1e3, "kafka-p50-µs")
	b.ReportMetric(grpcGW.rps, "grpcgw-req/s")
	b.ReportMetric(gwKafka.rps, "kafka-req/s")
	// A -benchtime longer than one run's rounds runs this again: print the
	// figures of the first run only.
	var ratios []float64
	for i := range rps[gwKafka] {
		ratios = append(ratios, rps[gwKafka][i]/rps[grpcGW][i])
	}
	slices.Sort(ratios)
	gatewayFiguresOnce.Do(func() {
		fmt.Printf("figure: gateway_rps64_vs_grpcgateway %.2f\n", ratios[len(ratios)/2])
		fmt.Printf("figure: gateway_p50_vs_grpcgateway %.2f\n", float64(gwKafka.p50)/float64(grpcGW.p50))
	})
}

var gatewayFiguresOnce sync.Once
