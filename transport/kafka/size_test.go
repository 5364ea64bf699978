package kafka_test

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
)

// TestLargePayloads sends many large calls at once, which the producer must
// split into batches the broker accepts, and one call over the broker's
// message size limit, which fails at once with RESOURCE_EXHAUSTED.
func TestLargePayloads(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		srv := e.Server(t, conformance.Options{})
		testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "s"})
		srv.Start(t)
		t.Cleanup(srv.Stop)
		c := testingv1.NewEchoServiceClient(e.Client(t, conformance.Options{}))
		// Random bytes: the records' compression (snappy by default) must
		// not shrink them under the limits the test is about.
		payload := randomBytes(200 << 10)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				resp, err := c.Echo(ctx, &testingv1.EchoRequest{Payload: payload})
				if err == nil && len(resp.GetPayload()) != len(payload) {
					err = status.Errorf(codes.DataLoss, "payload came back with %d bytes", len(resp.GetPayload()))
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("200 KiB call among 32 concurrent ones: %v", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Echo(ctx, &testingv1.EchoRequest{Payload: randomBytes(2 << 20)})
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max.message.bytes") {
			t.Fatalf("2 MiB call = %v, want RESOURCE_EXHAUSTED naming max.message.bytes", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("oversized call failed after %v, want at once", d)
		}
	})
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
