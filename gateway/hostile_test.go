package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/gateway"
	"github.com/purista-go/purista/transport/inproc"
)

// exampleGateway is the example system's gateway in front of its three
// services on the in-process transport: the routes and handlers a user's
// system has, without a broker.
func exampleGateway(t testing.TB, chOpts []inproc.Option, opts ...gateway.Option) http.Handler {
	t.Helper()
	log := quietLogger()
	ch := inproc.New(append([]inproc.Option{inproc.WithLogger(log), inproc.WithContracts(contracts.Services()...)}, chOpts...)...)
	t.Cleanup(func() { _ = ch.Close() })
	for _, name := range system.Services {
		if err := system.Register(name, ch, ch, log); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Err(); err != nil {
		t.Fatal(err)
	}
	g, err := system.NewGateway(ch, system.GatewayConfig{Options: opts}, log)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// hostile is one request a client may send to hurt or confuse the gateway.
type hostile struct {
	name, method, target string
	body                 string
	header               []string // name, value pairs
}

// hostileInputs are requests against the example routes that carry bad
// encodings, invalid UTF-8, wrong types or nonsense. None of them is the
// server's fault, so none may be answered with a 5xx.
var hostileInputs = []hostile{
	// Path parameters.
	{name: "path invalid utf8", method: "GET", target: "/v1/users/%ff%fe"},
	{name: "path lone continuation byte", method: "GET", target: "/v1/users/%80"},
	{name: "path overlong encoding", method: "GET", target: "/v1/users/%c0%af"},
	{name: "path surrogate half", method: "GET", target: "/v1/users/%ed%a0%80"},
	{name: "path truncated sequence", method: "GET", target: "/v1/orders/%e2%82"},
	{name: "path nul byte", method: "GET", target: "/v1/users/%00"},
	{name: "path control chars", method: "GET", target: "/v1/users/%01%02%1b"},
	{name: "path encoded slash", method: "GET", target: "/v1/users/a%2fb"},
	{name: "path dot segments", method: "GET", target: "/v1/users/../../etc/passwd"},
	{name: "path very long", method: "GET", target: "/v1/users/" + strings.Repeat("a", 6000)},
	{name: "path invalid utf8 nested", method: "GET", target: "/v1/users/%ff/orders"},
	{name: "path invalid utf8 notifications", method: "GET", target: "/v1/users/%fe%ff/notifications"},
	{name: "path invalid utf8 post", method: "POST", target: "/v1/users/%ff/orders", body: `{"items":[]}`},
	{name: "path invalid utf8 notify", method: "POST", target: "/v1/users/%ff/notifications", body: `{}`},
	{name: "path bad escape", method: "GET", target: "/v1/users/%zz"},
	{name: "path double slash", method: "GET", target: "//v1//users//x"},
	{name: "path unicode", method: "GET", target: "/v1/users/%e2%98%83"},
	// Query parameters.
	{name: "query invalid utf8 value", method: "GET", target: "/v1/users?page_token=%ff"},
	{name: "query invalid utf8 key", method: "GET", target: "/v1/users?%ff=1"},
	{name: "query invalid utf8 orders", method: "GET", target: "/v1/users/u1/orders?page_token=%fe%ff"},
	{name: "query invalid utf8 notifications", method: "GET", target: "/v1/users/u1/notifications?page_token=%c3"},
	{name: "query bad escape", method: "GET", target: "/v1/users?page_token=%zz"},
	{name: "query wrong type", method: "GET", target: "/v1/users?page_size=abc"},
	{name: "query overflow", method: "GET", target: "/v1/users?page_size=99999999999999999999"},
	{name: "query negative", method: "GET", target: "/v1/users?page_size=-5"},
	{name: "query float for int", method: "GET", target: "/v1/users?page_size=1.5"},
	{name: "query unknown field", method: "GET", target: "/v1/users?nope=1"},
	{name: "query repeated scalar", method: "GET", target: "/v1/users?page_size=1&page_size=2"},
	{name: "query nested unknown", method: "GET", target: "/v1/users?a.b.c.d=1"},
	{name: "query nul", method: "GET", target: "/v1/users?page_token=%00"},
	{name: "query semicolon", method: "GET", target: "/v1/users?page_token=a;b"},
	{name: "query path field override", method: "GET", target: "/v1/orders/o1?order_id=%ff"},
	// Bodies.
	{name: "body invalid utf8 in string", method: "POST", target: "/v1/users/u1/orders", body: "{\"items\":[{\"sku\":\"\xff\xfe\"}]}"},
	{name: "body invalid utf8 star", method: "POST", target: "/v1/users/u1/notifications", body: "{\"message\":\"\xff\"}"},
	{name: "body invalid utf8 field body", method: "POST", target: "/v1/users", body: "{\"email\":\"\xc3\",\"display_name\":\"x\"}"},
	{name: "body invalid utf8 key", method: "POST", target: "/v1/users", body: "{\"\xff\":1}"},
	{name: "body raw invalid utf8", method: "POST", target: "/v1/users", body: "\xff\xfe\xfd"},
	{name: "body escaped lone surrogate", method: "POST", target: "/v1/users", body: `{"email":"\ud800","display_name":"x"}`},
	{name: "body truncated", method: "POST", target: "/v1/users", body: `{"email":`},
	{name: "body not json", method: "POST", target: "/v1/users", body: `hello`},
	{name: "body array", method: "POST", target: "/v1/users/u1/orders", body: `[1,2,3]`},
	{name: "body wrong type", method: "POST", target: "/v1/users/u1/orders", body: `{"items":"many"}`},
	{name: "body int overflow", method: "POST", target: "/v1/users/u1/orders", body: `{"items":[{"quantity":1e100}]}`},
	{name: "body deep nesting", method: "POST", target: "/v1/users/u1/orders", body: strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)},
	{name: "body null", method: "POST", target: "/v1/users", body: `null`},
	{name: "body two values", method: "POST", target: "/v1/users", body: `{} {}`},
	{name: "body duplicate field", method: "POST", target: "/v1/users", body: `{"email":"a","email":"b"}`},
	{name: "body nul in string", method: "POST", target: "/v1/users", body: `{"email":"a\u0000b","display_name":"x"}`},
	{name: "body unknown field", method: "POST", target: "/v1/users/u1/notifications", body: `{"nope":1}`},
	{name: "body form encoded", method: "POST", target: "/v1/users", body: `email=a&display_name=b`, header: []string{"Content-Type", "application/x-www-form-urlencoded"}},
	{name: "body utf16 bom", method: "POST", target: "/v1/users", body: "\xfe\xff\x00{\x00}"},
	{name: "body huge number string", method: "POST", target: "/v1/users/u1/orders", body: `{"items":[{"quantity":"` + strings.Repeat("9", 400) + `"}]}`},
	{name: "body invalid utf8 token", method: "POST", target: "/v1/users/u1/notifications", body: "{\"text\":\xff}"},
	{name: "body invalid utf8 wrong type", method: "POST", target: "/v1/users/u1/orders", body: "{\"items\":\"\xff\"}"},
	{name: "body invalid utf8 enum-like", method: "POST", target: "/v1/users/u1/orders", body: "{\"items\":[{\"quantity\":\"\xff\"}]}"},
	{name: "body on get", method: "GET", target: "/v1/users/u1", body: "\xff\xff"},
	// Headers.
	{name: "header request id invalid utf8", method: "GET", target: "/v1/users/u1", header: []string{"X-Request-Id", "\xff\xfe"}},
	{name: "header request id non-ascii", method: "GET", target: "/v1/users/u1", header: []string{"X-Request-Id", "é"}},
	{name: "header request id huge", method: "GET", target: "/v1/users/u1", header: []string{"X-Request-Id", strings.Repeat("r", 4000)}},
	{name: "header traceparent invalid utf8", method: "GET", target: "/v1/users/u1", header: []string{"Traceparent", "\xff"}},
	{name: "header idempotency key invalid utf8", method: "POST", target: "/v1/users", body: `{}`, header: []string{"Idempotency-Key", "\xc3\x28"}},
	{name: "header grpc-timeout garbage", method: "GET", target: "/v1/users/u1", header: []string{"Grpc-Timeout", "\xff"}},
	{name: "header grpc-timeout huge", method: "GET", target: "/v1/users/u1", header: []string{"Grpc-Timeout", "99999999H"}},
	{name: "header authorization invalid utf8", method: "GET", target: "/v1/users/u1", header: []string{"Authorization", "Bearer \xff"}},
	{name: "header content-type garbage", method: "POST", target: "/v1/users", body: `{}`, header: []string{"Content-Type", "\xff/\xfe"}},
	{name: "header accept garbage", method: "GET", target: "/v1/users/u1", header: []string{"Accept", "\xff"}},
	// Methods.
	{name: "method unknown", method: "BREW", target: "/v1/users"},
	{name: "method options", method: "OPTIONS", target: "/v1/users"},
	{name: "method head", method: "HEAD", target: "/v1/users/u1"},
	{name: "method delete", method: "DELETE", target: "/v1/users/u1"},
	{name: "method trace", method: "TRACE", target: "/v1/users"},
}

// TestHostileInputs sends each hostile input to the example system's
// gateway: the answer must be below 500, and an error body must be valid
// UTF-8 JSON that echoes nothing of the server's internals.
func TestHostileInputs(t *testing.T) {
	h := exampleGateway(t, nil)
	for _, in := range hostileInputs {
		t.Run(in.name, func(t *testing.T) {
			req := httptest.NewRequest(in.method, "http://gateway"+"/", strings.NewReader(in.body))
			// httptest.NewRequest refuses some targets; set the raw path
			// the way the server would have parsed it.
			req.URL.Path, req.URL.RawPath, req.URL.RawQuery = "", "", ""
			if err := setTarget(req, in.target); err != nil {
				t.Skipf("net/http itself refuses %q before any handler: %v", in.target, err)
			}
			for i := 0; i+1 < len(in.header); i += 2 {
				req.Header.Set(in.header[i], in.header[i+1])
			}
			ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
			defer cancel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req.WithContext(ctx))
			checkSafeAnswer(t, in.method+" "+in.target, rec.Code, rec.Header(), rec.Body.Bytes())
		})
	}
}

// TestHostileInputsOverTCP sends the same inputs as raw HTTP/1.1 to the
// example gateway behind gateway.Serve, so that net/http's own parsing and
// the Serve helper's server are part of what is checked.
func TestHostileInputsOverTCP(t *testing.T) {
	h := exampleGateway(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateway.Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	for _, in := range hostileInputs {
		t.Run(in.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var req bytes.Buffer
			fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n", in.method, in.target)
			if in.body != "" {
				fmt.Fprintf(&req, "Content-Length: %d\r\n", len(in.body))
			}
			for i := 0; i+1 < len(in.header); i += 2 {
				fmt.Fprintf(&req, "%s: %s\r\n", in.header[i], in.header[i+1])
			}
			req.WriteString("\r\n")
			req.WriteString(in.body)
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(req.Bytes()); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: in.method})
			if err != nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.Header.Get("X-Request-Id") == "" {
				// net/http refused the request before the gateway saw
				// it: a bare 4xx of its own, not a google.rpc.Status.
				if res.StatusCode >= 500 {
					t.Errorf("net/http answered %d: %s", res.StatusCode, body)
				}
				return
			}
			checkSafeAnswer(t, in.method+" "+in.target, res.StatusCode, res.Header, body)
		})
	}
}

// setTarget sets req's URL from a request target as a server parses it.
func setTarget(req *http.Request, target string) error {
	u, err := req.URL.Parse(target)
	if err != nil {
		return err
	}
	req.URL = u
	req.RequestURI = target
	return nil
}

// checkSafeAnswer fails on a 5xx and on an error body that is not a valid
// google.rpc.Status in valid UTF-8 or that mentions internals.
func checkSafeAnswer(t testing.TB, what string, code int, h http.Header, body []byte) {
	t.Helper()
	if code >= 500 {
		t.Errorf("%s: status %d, want < 500; body %s", what, code, body)
	}
	if code < 400 || len(body) == 0 {
		return
	}
	if !utf8.Valid(body) {
		t.Errorf("%s: error body is not valid UTF-8: %q", what, body)
	}
	var e struct {
		Code    *int            `json:"code"`
		Message *string         `json:"message"`
		Details json.RawMessage `json:"details"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&e); err != nil || e.Code == nil || e.Message == nil || e.Details == nil {
		t.Errorf("%s: error body %q is not a google.rpc.Status with code, message and details (%v)", what, body, err)
		return
	}
	for _, leak := range []string{"127.0.0.1", "localhost:", ".requests", "purista.", "goroutine", "panic"} {
		if strings.Contains(*e.Message, leak) {
			t.Errorf("%s: error message %q shows internals (%q)", what, *e.Message, leak)
		}
	}
}
