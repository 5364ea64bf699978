package plaingrpc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/purista-go/purista/gen/purista/testing/events/v1"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/transport/plaingrpc"
)

// A server whose contracts emit events needs somewhere to publish them:
// gRPC has no topics, so it says so at start-up instead of dropping them.
func TestServerNeedsPublisherForEvents(t *testing.T) {
	_, err := plaingrpc.ServerOptions(plaingrpc.WithContracts(eventsv1.OrdersService_PuristaService))
	if err == nil || !strings.Contains(err.Error(), "plaingrpc.WithPublisher") || !strings.Contains(err.Error(), "OrderPlaced") {
		t.Errorf("ServerOptions = %v, want an error naming the event and WithPublisher", err)
	}
}

// A client answers a call to a service it has no contract for as the
// Kafka and in-process clients do.
func TestClientNeedsContracts(t *testing.T) {
	dopts, err := plaingrpc.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("127.0.0.1:1", append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "plaingrpc.WithContracts") {
		t.Errorf("a call without a contract = %v, want FAILED_PRECONDITION naming plaingrpc.WithContracts", err)
	}
	if _, err := plaingrpc.DialOptions(plaingrpc.WithDefaultTimeout(-time.Second)); err == nil {
		t.Error("a negative default timeout was accepted")
	}
}
