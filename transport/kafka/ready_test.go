package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// TestServerReady: a server is ready only between the start of Serve and
// its stop.
func TestServerReady(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		srv := e.Server(t, conformance.Options{}).(*server)
		testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "ready"})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Ready(ctx); err == nil || !strings.Contains(err.Error(), "not serving yet") {
			t.Fatalf("Ready before Serve = %v, want not serving yet", err)
		}
		srv.Start(t)
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if err = srv.Ready(ctx); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("Ready while serving = %v", err)
		}
		// The request topic deleted under it: not ready, and says why.
		topic := e.prefix + "purista.rpc.purista.testing.v1.EchoService"
		kafkatest.DeleteTopic(t, brokers, topic)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if err = srv.Ready(ctx); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), topic) {
			t.Errorf("Ready without its request topic = %v, want an error naming %s", err, topic)
		}
		srv.Stop()
		if err := srv.Ready(ctx); err == nil || !strings.Contains(err.Error(), "stopping") {
			t.Errorf("Ready after Stop = %v, want stopping", err)
		}
	})
}

var _ interface {
	Ready(context.Context) error
} = (*kafka.Server)(nil)
