package gateway_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// A request that breaks the contract's protovalidate rules gets 400 with a
// google.rpc.BadRequest detail naming every field, from the gateway, before
// a record is produced.
func TestValidationAtGateway(t *testing.T) {
	hs := httptest.NewServer(exampleGateway(t, nil))
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
}
