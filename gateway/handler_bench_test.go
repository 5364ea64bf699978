package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista/gateway"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
)

// echoConn answers Echo in process, so that a benchmark measures only the
// HTTP handler.
type echoConn struct{}

func (echoConn) Invoke(_ context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	req, ok := args.(*testingv1.EchoRequest)
	if !ok {
		return status.Errorf(codes.Unimplemented, "%s", method)
	}
	proto.Merge(reply.(proto.Message), &testingv1.EchoResponse{Message: req.GetMessage(), Payload: req.GetPayload()})
	return nil
}

func (echoConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "no streams")
}

type discardRW struct{ h http.Header }

func (w *discardRW) Header() http.Header         { return w.h }
func (w *discardRW) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardRW) WriteHeader(int)             {}

// BenchmarkHandler is the cost of the HTTP handler alone, without network or
// transport: stock grpc-gateway against the gateway with its defaults
// (request id, deadline, metrics, header allow-list, pre-matched route).
func BenchmarkHandler(b *testing.B) {
	stock := runtime.NewServeMux()
	if err := testingv1.RegisterEchoServiceHandlerClient(context.Background(), stock, testingv1.NewEchoServiceClient(echoConn{})); err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(echoConn{}, gateway.WithServices(echoService()), gateway.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range []struct {
		name string
		h    http.Handler
	}{{"grpcgateway", stock}, {"gateway", g}} {
		b.Run(h.name, func(b *testing.B) {
			req := httptest.NewRequest("POST", "/v1/echo", nil)
			req.Header.Set("Content-Type", "application/json")
			b.ReportAllocs()
			for b.Loop() {
				r := req.Clone(context.Background())
				r.Body = io.NopCloser(bytes.NewReader(benchBody))
				r.ContentLength = int64(len(benchBody))
				w := &discardRW{h: http.Header{}}
				h.h.ServeHTTP(w, r)
			}
		})
	}
}
