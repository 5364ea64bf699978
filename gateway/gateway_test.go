package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/gateway"
	streamv1 "github.com/purista-go/purista/gen/purista/testing/stream/v1"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	streamconf "github.com/purista-go/purista/internal/conformance/stream"
	"github.com/purista-go/purista/transport/inproc"
)

func TestEcho200(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithForwardHeaders("X-Request-Id", "Traceparent", "Echo-*"))
	payload := bytes.Repeat([]byte{7}, 256)
	r := do(t, "POST", url+"/v1/echo", jsonBody(map[string]any{"message": "hi", "payload": payload}),
		"Content-Type", "application/json", "Echo-Color", "blue", "X-Request-Id", "req-1",
		"Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "Not-Forwarded", "x")
	expectStatus(t, r, 200)
	var got struct {
		Message string `json:"message"`
		Payload string `json:"payload"`
		Server  string `json:"server"`
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Message != "hi" || got.Payload != base64.StdEncoding.EncodeToString(payload) || got.Server != "grpc" {
		t.Errorf("response %s", r.Body)
	}
	if h := r.Header.Get("Grpc-Metadata-Echo-Color"); h != "blue" {
		t.Errorf("response header metadata not returned: Grpc-Metadata-Echo-Color=%q; headers %v", h, r.Header)
	}
	if h := r.Header.Get("X-Request-Id"); h != "req-1" {
		t.Errorf("X-Request-Id = %q, want req-1", h)
	}
	if r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	md := echo.LastMetadata()
	if v := md.Get("x-request-id"); len(v) != 1 || v[0] != "req-1" {
		t.Errorf("x-request-id metadata %v", v)
	}
	if v := md.Get("traceparent"); len(v) != 1 {
		t.Errorf("traceparent not forwarded: %v", md)
	}
	if v := md.Get("not-forwarded"); len(v) != 0 {
		t.Errorf("header outside the allow-list forwarded: %v", md)
	}
}

func TestTrailersReturnedWhenAccepted(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithForwardHeaders("Echo-*"))
	req, _ := http.NewRequest("POST", url+"/v1/echo", strings.NewReader(`{"message":"t"}`))
	req.Header.Set("Echo-A", "1")
	req.Header.Set("TE", "trailers")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if v := res.Trailer.Get("Grpc-Trailer-Echo-A-Trailer"); v != "1" {
		t.Errorf("trailer metadata not returned: %v", res.Trailer)
	}
}

func TestRequestIDGenerated(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc)
	r := do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`))
	expectStatus(t, r, 200)
	id := r.Header.Get("X-Request-Id")
	if len(id) != 32 {
		t.Fatalf("X-Request-Id %q", id)
	}
	if v := echo.LastMetadata().Get("x-request-id"); len(v) != 1 || v[0] != id {
		t.Errorf("service saw x-request-id %v, client got %q", v, id)
	}
}

func TestUnknownRoute404(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)
	r := do(t, "GET", url+"/v1/nope", nil)
	expectStatus(t, r, 404)
	e := r.err(t)
	if e.Code != int(codes.NotFound) {
		t.Errorf("code %d", e.Code)
	}
	mustContain(t, "message", e.Message, "GET /v1/nope")
}

func TestWrongVerb405(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)
	r := do(t, "GET", url+"/v1/echo", nil)
	expectStatus(t, r, 405)
	if a := r.Header.Get("Allow"); a != "POST" {
		t.Errorf("Allow %q, want POST", a)
	}
	e := r.err(t)
	mustContain(t, "message", e.Message, "GET", "/v1/echo")
	r = do(t, "DELETE", url+"/v1/fail/3", nil)
	expectStatus(t, r, 405)
	if a := r.Header.Get("Allow"); a != "GET, HEAD" {
		t.Errorf("Allow %q, want GET, HEAD", a)
	}
	r = do(t, "POST", url+"/healthz", nil)
	expectStatus(t, r, 405)
}

func TestMalformedJSON400(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc)
	for _, body := range []string{`{"message":`, `{"message": 5}`, `not json`, `{"message":"a"} trailing`} {
		r := do(t, "POST", url+"/v1/echo", strings.NewReader(body), "Content-Type", "application/json")
		expectStatus(t, r, 400)
		e := r.err(t)
		if e.Code != int(codes.InvalidArgument) || !strings.HasPrefix(e.Message, "malformed JSON request body: ") {
			t.Errorf("%s: %+v", body, e)
		}
		t.Logf("%s -> %s", body, e.Message)
	}
	// A bad path parameter is a 400 too.
	r := do(t, "GET", url+"/v1/fail/abc", nil)
	expectStatus(t, r, 400)
	mustContain(t, "message", r.err(t).Message, "code")
	if n := echo.Calls(); n != 0 {
		t.Errorf("service called %d times for bad requests", n)
	}
}

func TestBodyTooLarge413(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithMaxBodyBytes(1024))
	big := `{"message":"` + strings.Repeat("x", 2000) + `"}`

	// With a Content-Length the gateway refuses before reading.
	r := do(t, "POST", url+"/v1/echo", strings.NewReader(big))
	expectStatus(t, r, 413)
	e := r.err(t)
	if e.Code != int(codes.ResourceExhausted) {
		t.Errorf("code %d", e.Code)
	}
	mustContain(t, "message", e.Message, "1024")

	// Without one (chunked), it notices while reading.
	r = do(t, "POST", url+"/v1/echo", io.MultiReader(strings.NewReader(big)))
	expectStatus(t, r, 413)
	mustContain(t, "message", r.err(t).Message, "1024")

	// A GET whose ignored body is too large is refused as well.
	r = do(t, "GET", url+"/v1/sleep", io.MultiReader(strings.NewReader(big)))
	expectStatus(t, r, 413)

	// Just under the limit passes.
	ok := `{"message":"` + strings.Repeat("x", 1000) + `"}`
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(ok)), 200)
	if n := echo.Calls(); n != 1 {
		t.Errorf("service called %d times, want 1", n)
	}
}

// A call nobody answers in time is a 504 that names the service and
// method, carries the ErrorInfo detail and the request id the client got
// back, and leaves the topic to the gateway's log line of that request id.
func TestDeadline504NamesServiceAndMethod(t *testing.T) {
	cc, _ := startGRPC(t)
	var logs lockedBuffer
	url, _ := startGateway(t, cc, gateway.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	start := time.Now()
	r := do(t, "GET", url+"/v1/sleep?duration=5s", nil, "Grpc-Timeout", "300m", "X-Request-Id", "rid-504")
	expectStatus(t, r, 504)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("504 after %v, want about 300ms", d)
	}
	e := r.err(t)
	if e.Code != int(codes.DeadlineExceeded) {
		t.Errorf("code %d", e.Code)
	}
	topic := purista.DefaultRequestTopic("purista.testing.v1.EchoService")
	mustContain(t, "message", e.Message, "purista.testing.v1.EchoService", "/purista.testing.v1.EchoService/Sleep", "300ms", "rid-504")
	if strings.Contains(e.Message, topic) {
		t.Errorf("message %q names the topic", e.Message)
	}
	if len(e.Details) != 1 || !bytes.Contains(e.Details[0], []byte(gateway.ReasonNoAnswer)) ||
		!bytes.Contains(e.Details[0], []byte(`"method":"/purista.testing.v1.EchoService/Sleep"`)) {
		t.Errorf("details %s", r.Body)
	}
	mustContain(t, "log", logs.String(), "request_id=rid-504", "status=504", "topic="+topic)
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestTimeouts(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithDefaultTimeout(7*time.Second), gateway.WithMaxTimeout(20*time.Second))
	left := func(r response) time.Duration {
		t.Helper()
		expectStatus(t, r, 200)
		var got struct {
			DeadlineLeft string `json:"deadlineLeft"`
		}
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatal(err)
		}
		d, err := time.ParseDuration(got.DeadlineLeft)
		if err != nil {
			t.Fatalf("deadlineLeft in %s: %v", r.Body, err)
		}
		return d
	}
	// The contract's 3 s applies when the client sends no Grpc-Timeout.
	if d := left(do(t, "GET", url+"/v1/sleep", nil)); d > 3*time.Second || d < 2*time.Second {
		t.Errorf("contract timeout: deadline left %v, want about 3s", d)
	}
	// A client may ask for more, up to the maximum.
	if d := left(do(t, "GET", url+"/v1/sleep", nil, "Grpc-Timeout", "10S")); d > 10*time.Second || d < 9*time.Second {
		t.Errorf("Grpc-Timeout 10S: deadline left %v", d)
	}
	if d := left(do(t, "GET", url+"/v1/sleep", nil, "Grpc-Timeout", "2H")); d > 20*time.Second || d < 19*time.Second {
		t.Errorf("Grpc-Timeout 2H capped at 20s: deadline left %v", d)
	}
	r := do(t, "GET", url+"/v1/sleep", nil, "Grpc-Timeout", "soon")
	expectStatus(t, r, 400)
	mustContain(t, "message", r.err(t).Message, "Grpc-Timeout")

	// The route table shows the gateway default for methods without one.
	var routes []gateway.RouteInfo
	if err := json.Unmarshal(do(t, "GET", url+"/routes", nil).Body, &routes); err != nil {
		t.Fatal(err)
	}
	for _, rt := range routes {
		want := "7s"
		if rt.Method == "Sleep" {
			want = "3s"
		}
		if rt.Timeout != want {
			t.Errorf("%s %s timeout %q, want %q", rt.Verb, rt.Path, rt.Timeout, want)
		}
	}
}

func TestStatusCodesMapToHTTP(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		r := do(t, "GET", fmt.Sprintf("%s/v1/fail/%d?message=boom-%d&reason=WHY", url, c, c), nil)
		want := runtime.HTTPStatusFromCode(c)
		if r.Status != want {
			t.Errorf("%v: status %d, want %d", c, r.Status, want)
			continue
		}
		e := r.err(t)
		switch {
		case e.Code != int(c):
			t.Errorf("%v: body %s", c, r.Body)
		case want < 500 && e.Message != fmt.Sprintf("boom-%d", c):
			t.Errorf("%v: body %s, want the service's message", c, r.Body)
		case want >= 500:
			// A server-side failure's message stays in the log: the
			// client learns which method failed and the request id.
			if strings.Contains(e.Message, "boom") {
				t.Errorf("%v: 5xx body %s passes the service's message on", c, r.Body)
			}
			mustContain(t, "message", e.Message, "/purista.testing.v1.EchoService/Fail", r.Header.Get("X-Request-Id"))
		}
		if len(e.Details) != 1 || !bytes.Contains(e.Details[0], []byte(`"reason":"WHY"`)) {
			t.Errorf("%v: details not kept: %s", c, r.Body)
		}
	}
}

func TestPanic500(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)
	r := do(t, "POST", url+"/v1/panic", nil)
	expectStatus(t, r, 500)
	if e := r.err(t); e.Code != int(codes.Internal) {
		t.Errorf("%+v", e)
	}
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`)), 200)
}

func TestBuiltinEndpoints(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)
	expectStatus(t, do(t, "GET", url+"/healthz", nil), 200)
	r := do(t, "GET", url+"/routes", nil)
	expectStatus(t, r, 200)
	var routes []gateway.RouteInfo
	if err := json.Unmarshal(r.Body, &routes); err != nil {
		t.Fatal(err)
	}
	if len(routes) != 5 {
		t.Fatalf("%d routes: %s", len(routes), r.Body)
	}
	want := gateway.RouteInfo{Verb: "GET", Path: "/v1/sleep", Service: "purista.testing.v1.EchoService", Method: "Sleep",
		FullMethod: "/purista.testing.v1.EchoService/Sleep", Topic: "purista.rpc.purista.testing.v1.EchoService",
		Timeout: "3s", TimeoutMillis: 3000}
	found := false
	for _, rt := range routes {
		if rt == want {
			found = true
		}
	}
	if !found {
		t.Errorf("no %+v in %s", want, r.Body)
	}
}

func TestReadiness(t *testing.T) {
	cc, _ := startGRPC(t)
	var fail error
	url, g := startGateway(t, cc, gateway.WithReadiness(gateway.ReadinessFunc(func(context.Context) error { return fail })))
	expectStatus(t, do(t, "GET", url+"/readyz", nil), 200)
	fail = fmt.Errorf("broker down")
	r := do(t, "GET", url+"/readyz", nil)
	expectStatus(t, r, 503)
	mustContain(t, "body", string(r.Body), "broker down")
	fail = nil
	g.Drain()
	r = do(t, "GET", url+"/readyz", nil)
	expectStatus(t, r, 503)
	mustContain(t, "body", string(r.Body), "shutting down")
	// Draining does not stop serving.
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`)), 200)
	expectStatus(t, do(t, "GET", url+"/healthz", nil), 200)
}

// topicConn is a connection that checks its request topics, as the Kafka
// client connection does.
type topicConn struct {
	*grpc.ClientConn
	asked []string
	err   error
}

func (c *topicConn) TopicsReady(_ context.Context, topics []string) error {
	c.asked = topics
	return c.err
}

func TestReadinessChecksTopics(t *testing.T) {
	cc, _ := startGRPC(t)
	tc := &topicConn{ClientConn: cc}
	url, _ := startGateway(t, tc)
	expectStatus(t, do(t, "GET", url+"/readyz", nil), 200)
	if len(tc.asked) != 1 || tc.asked[0] != "purista.rpc.purista.testing.v1.EchoService" {
		t.Errorf("topics asked %v", tc.asked)
	}
	tc.err = fmt.Errorf("topic purista.rpc.purista.testing.v1.EchoService does not exist")
	r := do(t, "GET", url+"/readyz", nil)
	expectStatus(t, r, 503)
	mustContain(t, "body", string(r.Body), "does not exist")
}

func TestMetrics(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)
	for range 3 {
		expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`)), 200)
	}
	expectStatus(t, do(t, "GET", url+"/v1/fail/5", nil), 404)
	expectStatus(t, do(t, "GET", url+"/nope", nil), 404)
	r := do(t, "GET", url+"/metrics", nil)
	expectStatus(t, r, 200)
	body := string(r.Body)
	mustContain(t, "metrics", body,
		`purista_gateway_http_requests_total{route="POST /v1/echo",status="200"} 3`,
		`purista_gateway_http_requests_total{route="GET /v1/fail/{code}",status="404"} 1`,
		`purista_gateway_http_requests_total{route="unmatched",status="404"} 1`,
		`purista_gateway_http_request_duration_seconds_bucket{route="POST /v1/echo",le="+Inf"} 3`,
		`purista_gateway_http_requests_in_flight 0`,
		`go_goroutines`,
	)
}

func TestAuth(t *testing.T) {
	cc, echo := startGRPC(t)
	// Fail is public; tokens: "admin" may call everything, "reader" only GET routes.
	svc := *echoContract()
	svc.Methods = append([]*purista.Method(nil), svc.Methods...)
	for i, m := range svc.Methods {
		if m.Name == "Fail" {
			pm := *m
			pm.Public = true
			svc.Methods[i] = &pm
		}
	}
	var seen []gateway.Route
	auth := gateway.BearerAuth("purista", func(ctx context.Context, token string, route gateway.Route) (context.Context, error) {
		seen = append(seen, route)
		switch {
		case token == "admin", token == "reader" && route.Verb == "GET":
			return metadata.AppendToOutgoingContext(ctx, "echo-user", token), nil
		case token == "reader":
			return nil, status.Errorf(codes.PermissionDenied, "token may not call %s", route.FullMethod)
		}
		return nil, status.Error(codes.Unauthenticated, "unknown token")
	})
	url, _ := startGateway(t, cc, gateway.WithServices(withRoutes(&svc)), gateway.WithAuthenticator(auth))

	r := do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`))
	expectStatus(t, r, 401)
	if h := r.Header.Get("WWW-Authenticate"); h != `Bearer realm="purista"` {
		t.Errorf("WWW-Authenticate %q", h)
	}
	if e := r.err(t); e.Code != int(codes.Unauthenticated) {
		t.Errorf("%+v", e)
	}
	r = do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Basic dTpw")
	expectStatus(t, r, 401)
	r = do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer nope")
	expectStatus(t, r, 401)
	mustContain(t, "WWW-Authenticate", r.Header.Get("WWW-Authenticate"), "invalid_token")
	r = do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer reader")
	expectStatus(t, r, 403)
	if e := r.err(t); e.Code != int(codes.PermissionDenied) {
		t.Errorf("%+v", e)
	}
	// Authentication comes before the body is read: an anonymous malformed
	// body gets 401, not 400.
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{`)), 401)
	if n := echo.Calls(); n != 0 {
		t.Fatalf("service called %d times by refused requests", n)
	}

	// The verified identity reaches the service and wins over a client's
	// header with the same name.
	r = do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer admin", "Echo-User", "mallory")
	expectStatus(t, r, 200)
	if v := echo.LastMetadata().Get("echo-user"); len(v) != 1 || v[0] != "admin" {
		t.Errorf("echo-user metadata %v, want [admin]", v)
	}
	if v := echo.LastMetadata().Get("authorization"); len(v) != 1 || v[0] != "Bearer admin" {
		t.Errorf("authorization metadata %v", v)
	}
	expectStatus(t, do(t, "GET", url+"/v1/sleep", nil, "Authorization", "Bearer reader"), 200)

	// A public route needs no token, and the Authenticator is not asked.
	n := len(seen)
	expectStatus(t, do(t, "GET", url+"/v1/fail/5", nil), 404)
	if len(seen) != n {
		t.Errorf("Authenticator called for a public route")
	}
	// Unknown routes are 404 whatever the token.
	expectStatus(t, do(t, "GET", url+"/v1/none", nil), 404)
}

func TestAuthorizationNotForwardedUnlessAllowed(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithForwardHeaders("X-Request-Id"))
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer secret"), 200)
	if v := echo.LastMetadata().Get("authorization"); len(v) != 0 {
		t.Errorf("authorization forwarded: %v", v)
	}
}

func TestNewRefusesBadTables(t *testing.T) {
	cc, _ := startGRPC(t)
	noReg := &purista.Service{Name: "x.v1.S", Methods: []*purista.Method{{
		Name: "M", FullMethod: "/x.v1.S/M", HTTP: []purista.HTTPRule{{Method: "GET", Pattern: "/v1/m"}},
	}}}
	if _, err := gateway.New(cc, gateway.WithServices(gateway.Service{Contract: noReg})); err == nil || !strings.Contains(err.Error(), "RegisterHTTP") {
		t.Errorf("service without RegisterHTTP: %v", err)
	}
	clash := &purista.Service{Name: "y.v1.S", Methods: []*purista.Method{{
		Name: "M", FullMethod: "/y.v1.S/M", HTTP: []purista.HTTPRule{{Method: "GET", Pattern: "/v1/fail/{other}"}},
	}}}
	_, err := gateway.New(cc, gateway.WithServices(echoService(), withRoutes(clash)))
	if err == nil || !strings.Contains(err.Error(), "/v1/fail/{other}") || !strings.Contains(err.Error(), "/purista.testing.v1.EchoService/Fail") {
		t.Errorf("conflicting routes: %v", err)
	}
	own := &purista.Service{Name: "z.v1.S", Methods: []*purista.Method{{
		Name: "M", FullMethod: "/z.v1.S/M", HTTP: []purista.HTTPRule{{Method: "GET", Pattern: "/metrics"}},
	}}}
	if _, err := gateway.New(cc, gateway.WithServices(withRoutes(own))); err == nil {
		t.Errorf("route on /metrics accepted")
	}
}

func TestNewNeedsServices(t *testing.T) {
	cc, _ := startGRPC(t)
	_, err := gateway.New(cc, gateway.WithLogger(quietLogger()))
	if err == nil || !strings.Contains(err.Error(), "WithServices") {
		t.Errorf("a gateway without services: %v, want an error naming WithServices", err)
	}
	if _, err := gateway.New(cc, gateway.WithServices(gateway.Service{})); err == nil || !strings.Contains(err.Error(), "Contract") {
		t.Errorf("a service without a contract: %v", err)
	}
}

// When a service's generated handlers serve a route its description does
// not list, the call is still authenticated, at the connection.
func TestAuthWhenRouteTableMissesARoute(t *testing.T) {
	cc, echo := startGRPC(t)
	svc := *echoContract()
	svc.Methods = nil
	for _, m := range echoContract().Methods {
		if m.Name == "Echo" {
			bare := *m
			bare.HTTP = nil
			m = &bare
		}
		svc.Methods = append(svc.Methods, m)
	}
	auth := gateway.BearerAuth("", func(ctx context.Context, token string, _ gateway.Route) (context.Context, error) {
		if token != "ok" {
			return nil, status.Error(codes.Unauthenticated, "bad token")
		}
		return ctx, nil
	})
	url, _ := startGateway(t, cc, gateway.WithServices(withRoutes(&svc)), gateway.WithAuthenticator(auth))
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`)), 401)
	if n := echo.Calls(); n != 0 {
		t.Fatalf("unauthenticated call executed")
	}
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer ok"), 200)

	// A method the gateway knows nothing about is refused.
	svc.Methods = svc.Methods[1:]
	url, _ = startGateway(t, cc, gateway.WithServices(withRoutes(&svc)), gateway.WithAuthenticator(auth))
	r := do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`), "Authorization", "Bearer ok")
	expectStatus(t, r, 500)
	mustContain(t, "message", r.err(t).Message, "internal error")
}

// When the route table and the generated handlers disagree about which
// method a request calls, the method actually called is authenticated:
// a public route in the table cannot open a protected method.
func TestAuthWhenRouteTableDisagrees(t *testing.T) {
	cc, echo := startGRPC(t)
	svc := *echoContract()
	svc.Methods = nil
	for _, m := range echoContract().Methods {
		m2 := *m
		switch m.Name {
		case "Echo":
			m2.HTTP = nil // its real route, POST /v1/echo, is claimed below
		case "Count":
			m2.Public = true
			m2.HTTP = append(m2.HTTP, purista.HTTPRule{Method: "POST", Pattern: "/v1/echo", Body: "*"})
		}
		svc.Methods = append(svc.Methods, &m2)
	}
	var asked []string
	auth := gateway.AuthenticatorFunc(func(r *http.Request, route gateway.Route) (context.Context, error) {
		asked = append(asked, route.FullMethod)
		return nil, status.Error(codes.Unauthenticated, "no")
	})
	url, _ := startGateway(t, cc, gateway.WithServices(withRoutes(&svc)), gateway.WithAuthenticator(auth))
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{}`)), 401)
	if echo.Calls() != 0 || len(asked) != 1 || asked[0] != testingv1.EchoService_Echo_FullMethodName {
		t.Errorf("calls %d, authenticator asked for %v", echo.Calls(), asked)
	}
}

// HEAD on a GET route answers as the GET would, without the body, and the
// Allow header of a 405 lists it.
func TestHeadOnGetRoute(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc)
	r := do(t, "HEAD", url+"/v1/fail/0", nil)
	expectStatus(t, r, 200)
	if len(r.Body) != 0 || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD answered %v with body %q", r.Header, r.Body)
	}
	if n := echo.Calls(); n != 1 {
		t.Errorf("service called %d times, want 1", n)
	}
	// A HEAD where no GET route exists stays 405.
	r = do(t, "HEAD", url+"/v1/echo", nil)
	expectStatus(t, r, 405)
	r = do(t, "DELETE", url+"/v1/fail/0", nil)
	expectStatus(t, r, 405)
	if a := r.Header.Get("Allow"); a != "GET, HEAD" {
		t.Errorf("Allow %q, want GET, HEAD", a)
	}
}

// A server stream is served as newline-delimited JSON.
func TestServerStreamIsNDJSON(t *testing.T) {
	ch := inproc.New(inproc.WithContracts(streamv1.StreamService_PuristaService))
	t.Cleanup(func() { _ = ch.Close() })
	streamv1.RegisterStreamServiceServer(ch, streamconf.NewServer())
	url, _ := startGateway(t, ch, gateway.WithServices(gateway.Service{Contract: streamv1.StreamService_PuristaService, RegisterHTTP: streamv1.RegisterStreamServiceHTTP}))
	r := do(t, "GET", url+"/v1/stream/count?count=3", nil)
	expectStatus(t, r, 200)
	if ct := r.Header.Get("Content-Type"); ct != gateway.ContentTypeStream {
		t.Errorf("Content-Type %q, want %s", ct, gateway.ContentTypeStream)
	}
	if lines := strings.Count(strings.TrimSpace(string(r.Body)), "\n") + 1; lines != 3 {
		t.Errorf("%d lines, want 3: %s", lines, r.Body)
	}

	// A stream that fails after its first message ends with an error line:
	// a client error keeps the service's words, a server error is public.
	r = do(t, "GET", url+"/v1/stream/count?count=1&fail_code=9&fail_message=out+of+numbers", nil)
	mustContain(t, "stream", string(r.Body), `"out of numbers"`)
	r = do(t, "GET", url+"/v1/stream/count?count=1&fail_code=13&fail_message=db+at+10.0.0.7:5432+down", nil)
	if strings.Contains(string(r.Body), "10.0.0.7") {
		t.Errorf("stream's error line shows the service's internals: %s", r.Body)
	}
	mustContain(t, "stream", string(r.Body), "/purista.testing.stream.v1.StreamService/Count failed with an internal error", r.Header.Get("X-Request-Id"))
}
