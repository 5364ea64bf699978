package plaingrpc_test

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	streamv1 "github.com/purista-go/purista/gen/purista/testing/stream/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/conformance/stream"
	"github.com/purista-go/purista/transport/plaingrpc"
)

// A server stream's request that breaks the contract's rules is refused
// with INVALID_ARGUMENT and its field violations before the handler runs,
// as on the broker transports (their stream suite checks it there).
func TestStreamValidation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := []plaingrpc.Option{plaingrpc.WithContracts(streamv1.StreamService_PuristaService), plaingrpc.WithLogger(slog.New(slog.DiscardHandler))}
	sopts, err := plaingrpc.ServerOptions(opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(sopts...)
	impl := stream.NewServer()
	streamv1.RegisterStreamServiceServer(srv, impl)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	dopts, err := plaingrpc.DialOptions(opts...)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(ln.Addr().String(), append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := streamv1.NewStreamServiceClient(conn)

	st, err := c.Count(ctx, &streamv1.CountRequest{Count: -1})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !slices.Equal(conformance.FieldViolations(err), []string{"count: int32.gte_lte"}) {
		t.Fatalf("Count(-1) = %v %v, want INVALID_ARGUMENT with the violation count: int32.gte_lte", err, conformance.FieldViolations(err))
	}
	select {
	case err := <-impl.Ended():
		t.Fatalf("the handler ran for an invalid request (ended with %v)", err)
	default:
	}
	st, err = c.Count(ctx, &streamv1.CountRequest{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if m, err := st.Recv(); err != nil || m.GetN() != int32(i+1) {
			t.Fatalf("message %d: %v %v", i+1, m, err)
		}
	}
}
