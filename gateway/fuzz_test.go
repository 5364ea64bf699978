package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista/transport/inproc"
)

// FuzzGatewayRequest sends random requests — method, path, query, body and
// one header — to the example system's gateway over the in-process
// transport. The property: the answer is below 500 unless a service's
// handler itself failed, and an error body is a google.rpc.Status in valid
// UTF-8 that shows no internals. The seeds (the hostile inputs and a few
// valid requests) run as an ordinary test; `make fuzz` explores from them.
func FuzzGatewayRequest(f *testing.F) {
	for _, in := range hostileInputs {
		path, query, _ := strings.Cut(in.target, "?")
		header := ""
		if len(in.header) >= 2 {
			header = in.header[0] + ": " + in.header[1]
		}
		f.Add(in.method, path, query, []byte(in.body), header)
	}
	f.Add("POST", "/v1/users", "", []byte(`{"email":"ada@example.com","display_name":"Ada"}`), "Content-Type: application/json")
	f.Add("GET", "/v1/users", "page_size=2", []byte(nil), "")
	f.Add("POST", "/v1/users/u1/orders", "", []byte(`{"items":[{"sku":"a","quantity":1,"unit_price_cents":100}]}`), "Idempotency-Key: k1")
	f.Add("GET", "/v1/users/u1/notifications", "page_token=x", []byte(nil), "X-Request-Id: fuzz")
	f.Add("POST", "/v1/users/u1/notifications", "", []byte(`{"text":"hi"}`), "Grpc-Timeout: 1S")

	// Server-side failures of the handlers themselves are the services'
	// business, not the gateway's; they are counted here to tell them apart.
	var handlerFailures atomic.Int64
	countFailures := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		res, err := h(ctx, req)
		if err != nil && runtime.HTTPStatusFromCode(status.Code(err)) >= 500 {
			handlerFailures.Add(1)
		}
		return res, err
	}
	h := exampleGateway(f, []inproc.Option{inproc.WithUnaryServerInterceptors(countFailures)})

	f.Fuzz(func(t *testing.T, method, path, query string, body []byte, header string) {
		req, ok := fuzzRequest(method, path, query, body, header)
		if !ok {
			t.Skip("net/http refuses this request before any handler sees it")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		before := handlerFailures.Load()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		if rec.Code >= 500 && handlerFailures.Load() != before {
			return // the service failed, and said so
		}
		checkSafeAnswer(t, fmt.Sprintf("%q %q ? %q body %q header %q", method, path, query, body, header), rec.Code, rec.Header(), rec.Body.Bytes())
	})
}

// fuzzRequest builds the request a net/http server would hand the gateway
// for these parts, or reports false when the server would refuse it itself
// (bad method token, unparsable target, invalid header).
func fuzzRequest(method, path, query string, body []byte, header string) (*http.Request, bool) {
	if method == "" || !isToken(method) {
		return nil, false
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	target := path
	if query != "" {
		target += "?" + query
	}
	if strings.ContainsAny(target, " \t\r\n#") {
		return nil, false
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, false
	}
	req := &http.Request{
		Method:        method,
		URL:           u,
		RequestURI:    target,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{},
		Host:          "gateway",
		Body:          http.NoBody,
		ContentLength: int64(len(body)),
	}
	if len(body) > 0 {
		req.Body = httpBody{bytes.NewReader(body)}
	}
	if header != "" {
		k, v, ok := strings.Cut(header, ":")
		v = strings.TrimSpace(v)
		if !ok || !isToken(k) || !validHeaderValue(v) {
			return nil, false
		}
		req.Header.Add(k, v)
	}
	return req, true
}

type httpBody struct{ *bytes.Reader }

func (httpBody) Close() error { return nil }

// isToken reports whether s is an HTTP token (RFC 9110 5.6.2), as net/http
// wants methods and header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue is net/http's rule for field values: no control
// characters but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
