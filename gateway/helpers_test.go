package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/gateway"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
)

// echoService is the generated description of the test service.
func echoContract() *purista.Service { return testingv1.EchoService_PuristaService }

// echoService is the Echo service as the gateway takes it.
func echoService() gateway.Service { return withRoutes(echoContract()) }

// withRoutes pairs a contract of the Echo service, perhaps altered, with
// Echo's generated HTTP registration.
func withRoutes(c *purista.Service) gateway.Service {
	return gateway.Service{Contract: c, RegisterHTTP: testingv1.RegisterEchoServiceHTTP}
}

// swagger is the merged OpenAPI v2 of the contracts in proto/.
func swagger(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../gen/openapi/purista.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recoverPanics turns a handler panic into INTERNAL, as purista's transports
// do; a bare grpc.Server would crash the test binary.
func recoverPanics(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = status.Errorf(codes.Internal, "panic in %s: %v", info.FullMethod, p)
		}
	}()
	return h(ctx, req)
}

// startGRPC serves a fresh EchoServer on 127.0.0.1 and returns a client
// connection to it.
func startGRPC(t testing.TB) (*grpc.ClientConn, *conformance.EchoServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(recoverPanics))
	echo := &conformance.EchoServer{Name: "grpc"}
	testingv1.RegisterEchoServiceServer(srv, echo)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc, echo
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startGateway serves a gateway for the Echo service over conn with
// httptest.NewServer and returns its base URL.
func startGateway(t testing.TB, conn grpc.ClientConnInterface, opts ...gateway.Option) (string, *gateway.Gateway) {
	t.Helper()
	opts = append([]gateway.Option{
		gateway.WithServices(echoService()),
		gateway.WithOpenAPI(swagger(t)),
		gateway.WithLogger(quietLogger()),
	}, opts...)
	g, err := gateway.New(conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(g)
	t.Cleanup(hs.Close)
	return hs.URL, g
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// errBody is the gateway's JSON error body.
type errBody struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

func (r response) err(t testing.TB) errBody {
	t.Helper()
	var e errBody
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.Body, err)
	}
	if !bytes.Contains(r.Body, []byte(`"details"`)) {
		t.Errorf("error body %s has no details field", r.Body)
	}
	return e
}

func do(t testing.TB, method, url string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

func expectStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body %s", r.Status, want, r.Body)
	}
}

func mustContain(t testing.TB, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not contain %q", what, s, sub)
		}
	}
}

func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return bytes.NewReader(b)
}

// serve serves h with httptest and returns its base URL.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}
