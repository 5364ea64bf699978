package gateway_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/purista-go/purista/transport/inproc"
)

// A request that breaks the contract's protovalidate rules gets 400 with a
// google.rpc.BadRequest detail naming every field, from the gateway, before
// a record is produced.
func TestValidationAtGateway(t *testing.T) {
	// Counts the calls the gateway makes on its connection: a refused
	// request must make none.
	var calls atomic.Int64
	count := inproc.WithUnaryClientInterceptors(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		calls.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	hs := httptest.NewServer(exampleGateway(t, []inproc.Option{count}))
	t.Cleanup(hs.Close)
	cases := []struct {
		method, target, body string
		fields               []string
	}{
		{"POST", "/v1/users", `{"email":"not an address","displayName":""}`, []string{"user.email", "user.display_name"}},
		{"GET", "/v1/users?pageSize=101&pageToken=x", ``, []string{"page_size", "page_token"}},
		{"POST", "/v1/users/u-1/orders", `{"items":[{"sku":"","quantity":0,"unitPriceCents":1}]}`, []string{"items[0].sku", "items[0].quantity"}},
		{"POST", "/v1/users/u-1/notifications", `{"text":"` + strings.Repeat("ü", 501) + `"}`, []string{"text"}},
	}
	for _, c := range cases {
		r := do(t, c.method, hs.URL+c.target, strings.NewReader(c.body), "Content-Type", "application/json")
		var body struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Details []struct {
				Type            string `json:"@type"`
				FieldViolations []struct {
					Field, Description, Reason string
				} `json:"fieldViolations"`
			} `json:"details"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("%s %s: body %q: %v", c.method, c.target, r.Body, err)
		}
		var got []string
		for _, d := range body.Details {
			if d.Type == "type.googleapis.com/google.rpc.BadRequest" {
				for _, v := range d.FieldViolations {
					got = append(got, v.Field)
					if v.Description == "" || v.Reason == "" {
						t.Errorf("%s %s: violation %+v lacks a description or reason", c.method, c.target, v)
					}
				}
			}
		}
		if r.Status != 400 || body.Code != 3 || strings.Join(got, ",") != strings.Join(c.fields, ",") {
			t.Errorf("%s %s = %d code %d violations %v (%s), want 400, code 3, %v", c.method, c.target, r.Status, body.Code, got, body.Message, c.fields)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the gateway called its connection %d times for requests it refused", n)
	}
	if r := do(t, "GET", hs.URL+"/v1/users?pageSize=10", nil); r.Status != 200 || calls.Load() != 1 {
		t.Errorf("a valid request = %d after %d calls on the connection, want 200 after 1", r.Status, calls.Load())
	}
}
