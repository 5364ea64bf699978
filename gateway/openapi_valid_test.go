package gateway_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-openapi/loads"
	"github.com/go-openapi/strfmt"
	"github.com/go-openapi/validate"
)

// Both documents the example system's gateway serves pass a standard
// validator: go-openapi's Swagger 2.0 validator (the JSON Schema of the
// specification plus its semantic checks: unique operation ids, path
// parameters declared, ...) and kin-openapi's OpenAPI 3 validation. And
// they carry the contracts' protovalidate rules.
func TestOpenAPIDocumentsValid(t *testing.T) {
	hs := httptest.NewServer(exampleGateway(t, nil))
	t.Cleanup(hs.Close)

	v2 := do(t, "GET", hs.URL+"/openapi.json", nil)
	expectStatus(t, v2, 200)
	doc2, err := loads.Analyzed(json.RawMessage(v2.Body), "2.0")
	if err != nil {
		t.Fatalf("loading the OpenAPI 2 document: %v", err)
	}
	if err := validate.Spec(doc2, strfmt.Default); err != nil {
		t.Errorf("the OpenAPI 2 document is not valid: %v", err)
	}

	v3 := do(t, "GET", hs.URL+"/openapi.v3.json", nil)
	expectStatus(t, v3, 200)
	doc3, err := openapi3.NewLoader().LoadFromData(v3.Body)
	if err != nil {
		t.Fatalf("loading the OpenAPI 3 document: %v", err)
	}
	if err := doc3.Validate(context.Background()); err != nil {
		t.Errorf("the OpenAPI 3 document is not valid: %v", err)
	}

	if doc3.Info.Title != "purista example system" || doc3.Info.Version != "v1" {
		t.Errorf("info %q %q, want what gateway.WithOpenAPIInfo set", doc3.Info.Title, doc3.Info.Version)
	}
	ids := map[string]string{}
	for path, item := range doc3.Paths.Map() {
		for verb, op := range item.Operations() {
			if op.OperationID == "" || ids[op.OperationID] != "" {
				t.Errorf("%s %s: operation id %q empty or also on %s", verb, path, op.OperationID, ids[op.OperationID])
			}
			ids[op.OperationID] = verb + " " + path
		}
	}

	// The rules of users.v1 and orders.v1, as JSON Schema keywords.
	user := doc3.Components.Schemas["v1User"].Value
	if p := user.Properties["email"].Value; p.Format != "email" {
		t.Errorf("User.email: format %q, want email", p.Format)
	}
	if p := user.Properties["displayName"].Value; p.MinLength != 1 || p.MaxLength == nil || *p.MaxLength != 64 {
		t.Errorf("User.displayName: minLength %d maxLength %v, want 1 and 64", p.MinLength, p.MaxLength)
	}
	list := doc3.Paths.Find("/v1/users").Get
	for _, p := range list.Parameters {
		s := p.Value.Schema.Value
		switch p.Value.Name {
		case "pageSize":
			if s.Min == nil || *s.Min != 0 || s.Max == nil || *s.Max != 100 {
				t.Errorf("pageSize: minimum %v maximum %v, want 0 and 100", s.Min, s.Max)
			}
		case "pageToken":
			if s.Pattern != "^[0-9]{0,9}$" {
				t.Errorf("pageToken: pattern %q", s.Pattern)
			}
		}
	}
	create := doc3.Paths.Find("/v1/users").Post
	if rb := create.RequestBody.Value; !rb.Required {
		t.Errorf("CreateUser: the body (user, required by the contract) is not required")
	}
	body := doc3.Components.Schemas["OrdersServiceCreateOrderBody"].Value
	if items := body.Properties["items"].Value; items.MinItems != 1 || items.MaxItems == nil || *items.MaxItems != 20 {
		t.Errorf("CreateOrder items: minItems %d maxItems %v, want 1 and 20", items.MinItems, items.MaxItems)
	}
	li := doc3.Components.Schemas["v1LineItem"].Value
	if q := li.Properties["quantity"].Value; q.Min == nil || *q.Min != 1 || q.Max == nil || *q.Max != 100 {
		t.Errorf("LineItem.quantity: minimum %v maximum %v, want 1 and 100", q.Min, q.Max)
	}
	if p := li.Properties["unitPriceCents"].Value; p.Min == nil || *p.Min != 0 || !p.ExclusiveMin.IsTrue() {
		t.Errorf("LineItem.unitPriceCents: minimum %v exclusive %v, want > 0", p.Min, p.ExclusiveMin)
	}
}
