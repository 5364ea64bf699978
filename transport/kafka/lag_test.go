package kafka_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// gatedEcho is an echo service whose Echo waits for the gate to open.
type gatedEcho struct {
	*conformance.EchoServer
	gate    chan struct{}
	started chan struct{}
}

func (g *gatedEcho) Echo(ctx context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	g.started <- struct{}{}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.EchoServer.Echo(ctx, req)
}

// scrape reads handler's /metrics as Prometheus does and returns every
// sample by its series ("name{label="value",...}"), labels sorted.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", res.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sumOf adds the samples of the series whose name and labels start with prefix.
func sumOf(samples map[string]float64, prefix string) float64 {
	var sum float64
	for k, v := range samples {
		if strings.HasPrefix(k, prefix) {
			sum += v
		}
	}
	return sum
}

// TestMetrics makes real calls through a client and a server that share a
// registry and reads the per-method series from /metrics: the consumer lag
// while requests wait for a busy handler, in-flight gauges, then latency,
// waiting time and results by code once they are answered.
func TestMetrics(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	e := newEnv(t, brokers)
	reg := prometheus.NewRegistry()
	metricsH := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	echo := &gatedEcho{EchoServer: &conformance.EchoServer{Name: "m"}, gate: make(chan struct{}), started: make(chan struct{}, 8)}
	c := testingv1.NewEchoServiceClient(servePair(t, e, echo, kafka.WithMetrics(reg)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const calls = 4
	errs := make(chan error, calls)
	for range calls {
		go func() {
			_, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "hi"})
			errs <- err
		}()
	}
	for range calls {
		select {
		case <-echo.started:
		case <-ctx.Done():
			t.Fatal("the handlers did not start")
		}
	}
	const (
		svc    = `service="purista.testing.v1.EchoService"`
		method = `method="Echo"`
		group  = `group="`
	)
	// Every request is taken and none answered: none is committed.
	pollMetrics(t, "lag 4 and 4 handlers in flight", func() (bool, string) {
		m := scrape(t, metricsH)
		lag := sumOf(m, `purista_kafka_consumer_lag_records{`+group+e.prefix+`purista.purista.testing.v1.EchoService"`)
		in := m[`purista_rpc_server_in_flight{`+method+`,`+svc+`}`]
		cin := m[`purista_rpc_client_in_flight{`+method+`,`+svc+`}`]
		return lag == calls && in == calls && cin == calls, "lag " + ftoa(lag) + ", server in flight " + ftoa(in) + ", client in flight " + ftoa(cin)
	})
	close(echo.gate)
	for range calls {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Fail(ctx, &testingv1.FailRequest{Code: int32(codes.NotFound), Message: "no such thing"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Fail: %v, want NOT_FOUND", err)
	}
	pollMetrics(t, "the answered calls in every series and no lag", func() (bool, string) {
		m := scrape(t, metricsH)
		want := map[string]float64{
			`purista_rpc_server_calls_total{code="OK",` + method + `,` + svc + `}`:             calls,
			`purista_rpc_server_calls_total{code="NOT_FOUND",method="Fail",` + svc + `}`:       1,
			`purista_rpc_server_duration_seconds_count{` + method + `,` + svc + `}`:            calls,
			`purista_rpc_server_queue_wait_seconds_count{` + method + `,` + svc + `}`:          calls,
			`purista_rpc_server_in_flight{` + method + `,` + svc + `}`:                         0,
			`purista_rpc_client_calls_total{code="OK",` + method + `,` + svc + `}`:             calls,
			`purista_rpc_client_calls_total{code="NOT_FOUND",method="Fail",` + svc + `}`:       1,
			`purista_rpc_client_duration_seconds_count{` + method + `,` + svc + `}`:            calls,
			`purista_rpc_client_duration_seconds_bucket{` + method + `,` + svc + `,le="+Inf"}`: calls,
			`purista_rpc_client_in_flight{` + method + `,` + svc + `}`:                         0,
		}
		var wrong []string
		for k, w := range want {
			if m[k] != w {
				wrong = append(wrong, k+" = "+ftoa(m[k])+", want "+ftoa(w))
			}
		}
		if lag := sumOf(m, `purista_kafka_consumer_lag_records{`+group+e.prefix+`purista.purista.testing.v1.EchoService"`); lag != 0 {
			wrong = append(wrong, "lag "+ftoa(lag)+", want 0")
		}
		return len(wrong) == 0, strings.Join(wrong, "\n")
	})
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// pollMetrics polls cond for up to 10 s and fails with its last report.
func pollMetrics(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok, report := cond()
		if ok {
			return
		}
		last = report
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, last)
		}
	}
}
