package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

func TestCollector(t *testing.T) {
	brokers := kafkatest.Embedded(t)
	e := newEnv(t, brokers)
	srv := e.Server(t, conformance.Options{})
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "s"})
	srv.Start(t)
	t.Cleanup(srv.Stop)
	conn := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
	c := testingv1.NewEchoServiceClient(conn)
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if _, err := c.Echo(ctx, &testingv1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(kafka.NewCollector(map[string]*kafka.Server{"echo": srv.(*server).Server}, map[string]*kafka.ClientConn{"gw": conn}))
	want := map[string]float64{
		"purista_kafka_client_calls_total/gw":               3,
		"purista_kafka_server_requests_answered_total/echo": 3,
		"purista_kafka_server_requests_expired_total/echo":  0,
		"purista_kafka_client_records_produced_total/gw":    4, // 3 requests and the keepalive
		"purista_kafka_server_records_produced_total/echo":  3,
	}
	// The server counts a reply once the broker acknowledged it, which can
	// be a moment after the client has read it: wait, bounded, for the
	// counters to settle.
	var wrong []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				got[f.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
		wrong = wrong[:0]
		for name, w := range want {
			if got[name] != w {
				wrong = append(wrong, fmt.Sprintf("%s = %v, want %v", name, got[name], w))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range wrong {
		t.Error(w)
	}
}
