package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/purista-go/purista/gateway"
	"github.com/purista-go/purista/gateway/internal/openapiclient"
)

func TestOpenAPIEndpoints(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)

	r := do(t, "GET", url+"/openapi.json", nil)
	expectStatus(t, r, 200)
	var v2 map[string]any
	if err := json.Unmarshal(r.Body, &v2); err != nil {
		t.Fatal(err)
	}
	if v2["swagger"] != "2.0" {
		t.Errorf("swagger %v", v2["swagger"])
	}
	var want map[string]any
	if err := json.Unmarshal(swagger(t), &want); err != nil {
		t.Fatal(err)
	}
	// The generated document's paths and definitions, with the contract's
	// rules added (TestOpenAPIDocumentsValid looks at those).
	if !jsonEqual(sortedKeys(v2["paths"]), sortedKeys(want["paths"])) || !jsonEqual(sortedKeys(v2["definitions"]), sortedKeys(want["definitions"])) {
		t.Errorf("served v2 has other paths or definitions than the generated document")
	}
	// Without gateway.WithOpenAPIInfo: the service's name and its
	// package's version, not protoc-gen-openapiv2's file name and
	// "version not set".
	if info := v2["info"].(map[string]any); info["title"] != "purista.testing.v1.EchoService" || info["version"] != "v1" {
		t.Errorf("info %v, want the service's name and version v1", info)
	}

	r = do(t, "GET", url+"/openapi.v3.json", nil)
	expectStatus(t, r, 200)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Errorf("served OpenAPI 3 document is not valid: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	for _, p := range []string{"/v1/echo", "/v1/fail/{code}", "/v1/sleep", "/v1/panic", "/v1/count"} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("no %s in the OpenAPI 3 document", p)
		}
	}
}

func sortedKeys(v any) []string {
	out := keys(v.(map[string]any))
	sort.Strings(out)
	return out
}

func TestOpenAPINotConfigured404(t *testing.T) {
	cc, _ := startGRPC(t)
	g, err := gateway.New(cc, gateway.WithServices(echoService()), gateway.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, g)
	r := do(t, "GET", url+"/openapi.v3.json", nil)
	expectStatus(t, r, 404)
	mustContain(t, "message", r.err(t).Message, "WithOpenAPI")
}

func TestOpenAPIMerge(t *testing.T) {
	cc, _ := startGRPC(t)
	other := []byte(`{"swagger":"2.0","info":{"title":"orders/v1/orders.proto","version":"1"},
		"tags":[{"name":"OrdersService"}],"consumes":["application/json"],"produces":["application/json"],
		"paths":{"/v1/orders/{id}":{"get":{"operationId":"OrdersService_GetOrder","parameters":[{"name":"id","in":"path","required":true,"type":"string"}],
			"responses":{"200":{"description":"ok","schema":{"$ref":"#/definitions/v1Order"}},"default":{"description":"err","schema":{"$ref":"#/definitions/rpcStatus"}}}}}},
		"definitions":{"v1Order":{"type":"object","properties":{"id":{"type":"string"}}},
			"rpcStatus":{"type":"object","properties":{"code":{"type":"integer","format":"int32"},"message":{"type":"string"},"details":{"type":"array","items":{"type":"object","$ref":"#/definitions/protobufAny"}}}},
			"protobufAny":{"type":"object","properties":{"@type":{"type":"string"}},"additionalProperties":{}}}}`)
	// rpcStatus and protobufAny must be identical to merge: take them from
	// the generated document.
	var base, o map[string]any
	_ = json.Unmarshal(swagger(t), &base)
	_ = json.Unmarshal(other, &o)
	defs := o["definitions"].(map[string]any)
	for _, k := range []string{"rpcStatus", "protobufAny"} {
		defs[k] = base["definitions"].(map[string]any)[k]
	}
	other, _ = json.Marshal(o)

	url, _ := startGateway(t, cc, gateway.WithOpenAPI(other), gateway.WithOpenAPIInfo("Shop API", "1.2.3"))
	r := do(t, "GET", url+"/openapi.json", nil)
	expectStatus(t, r, 200)
	var v2 map[string]any
	_ = json.Unmarshal(r.Body, &v2)
	paths := v2["paths"].(map[string]any)
	if paths["/v1/orders/{id}"] == nil || paths["/v1/echo"] == nil {
		t.Errorf("merged paths: %v", keys(paths))
	}
	if info := v2["info"].(map[string]any); info["title"] != "Shop API" || info["version"] != "1.2.3" {
		t.Errorf("info %v", info)
	}
	if len(v2["tags"].([]any)) != 2 {
		t.Errorf("tags %v", v2["tags"])
	}
	r = do(t, "GET", url+"/openapi.v3.json", nil)
	mustContain(t, "v3", string(r.Body), `"/v1/orders/{id}"`, `"v1Order"`, `"/v1/echo"`)

	// The same definition name with different content cannot merge.
	defs["v1EchoRequest"] = map[string]any{"type": "object"}
	clash, _ := json.Marshal(o)
	_, err := gateway.New(cc, gateway.WithServices(echoService()), gateway.WithOpenAPI(swagger(t), clash))
	if err == nil || !strings.Contains(err.Error(), "v1EchoRequest") {
		t.Errorf("clashing definitions: %v", err)
	}
	if _, err := gateway.New(cc, gateway.WithOpenAPI([]byte(`{"openapi":"3.0.0"}`))); err == nil {
		t.Errorf("OpenAPI 3 input accepted")
	}
}

// Templates that differ only in parameter names are one path to OpenAPI 3:
// merged documents put their operations on one path, with one set of names.
func TestOpenAPIMergesEquivalentTemplates(t *testing.T) {
	doc := func(path, verb, param string) []byte {
		return fmt.Appendf(nil, `{"swagger":"2.0","info":{"title":"t","version":"1"},"paths":{%q:{%q:{"operationId":%q,
			"parameters":[{"name":%q,"in":"path","required":true,"type":"string"},{"name":"q","in":"query","type":"string"}],
			"responses":{"200":{"description":"ok"}}}}}}`, path, verb, verb+"Thing_"+param, param)
	}
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithOpenAPI(doc("/v1/things/{thingId}", "get", "thingId"), doc("/v1/things/{id}", "delete", "id")))
	var v3 struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	r := do(t, "GET", url+"/openapi.v3.json", nil)
	if err := json.Unmarshal(r.Body, &v3); err != nil {
		t.Fatal(err)
	}
	item, ok := v3.Paths["/v1/things/{thingId}"]
	if _, twice := v3.Paths["/v1/things/{id}"]; !ok || twice {
		t.Fatalf("paths %v, want /v1/things/{thingId} once", keys(mapOf(v3.Paths)))
	}
	del, ok := item["delete"]
	if !ok || item["get"].Parameters == nil {
		t.Fatalf("operations %v, want get and delete", item)
	}
	for _, p := range del.Parameters {
		if p.In == "path" && p.Name != "thingId" {
			t.Errorf("delete's path parameter is %q, want thingId", p.Name)
		}
	}

	// The same verb on both is a conflict.
	_, err := gateway.New(cc, gateway.WithServices(echoService()), gateway.WithOpenAPI(doc("/v1/things/{thingId}", "get", "thingId"), doc("/v1/things/{id}", "get", "id")))
	if err == nil || !strings.Contains(err.Error(), "one path") {
		t.Errorf("two GETs on equivalent templates: %v", err)
	}
}

func mapOf[V any](m map[string]V) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// The committed client was generated from what the gateway serves.
func TestOpenAPIClientUpToDate(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)
	served := do(t, "GET", url+"/openapi.v3.json", nil).Body
	var buf bytes.Buffer
	if err := json.Indent(&buf, served, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	const dir = "internal/openapiclient"
	committed, err := os.ReadFile(filepath.Join(dir, "openapi.v3.json"))
	if err != nil {
		t.Fatal(err)
	}
	const fix = "run: go generate ./gateway/internal/openapiclient"
	if !bytes.Equal(buf.Bytes(), committed) {
		t.Fatalf("%s/openapi.v3.json differs from the served document; %s", dir, fix)
	}
	if testing.Short() {
		t.Skip("-short: not running oapi-codegen")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run oapi-codegen")
	}
	tmp := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(dir, "oapi-codegen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Same configuration, output into tmp; go tool -modfile must run inside
	// the module.
	cfg = []byte(strings.Replace(string(cfg), "output: client.gen.go", "output: "+filepath.Join(tmp, "client.gen.go"), 1))
	if err := os.WriteFile(filepath.Join(tmp, "oapi-codegen.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, _ := filepath.Abs(filepath.Join(dir, "openapi.v3.json"))
	cmd := exec.Command(goBin, "tool", "-modfile=tools/go.mod", "oapi-codegen", "-config", filepath.Join(tmp, "oapi-codegen.yaml"), spec)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, out)
	}
	gen, err := os.ReadFile(filepath.Join(tmp, "client.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(dir, "client.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gen, have) {
		t.Fatalf("%s/client.gen.go is not what oapi-codegen generates from openapi.v3.json; %s", dir, fix)
	}
}

// A client generated by oapi-codegen from the served document calls the
// gateway.
func TestOpenAPIClientCallsGateway(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc)
	c, err := openapiclient.NewClientWithResponses(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	msg := "from oapi-codegen"
	payload := []byte{1, 2, 3}
	echo, err := c.EchoServiceEchoWithResponse(ctx, openapiclient.V1EchoRequest{Message: &msg, Payload: &payload})
	if err != nil {
		t.Fatal(err)
	}
	if echo.StatusCode() != 200 || echo.JSON200 == nil || *echo.JSON200.Message != msg || !bytes.Equal(*echo.JSON200.Payload, payload) {
		t.Fatalf("Echo: %d %s", echo.StatusCode(), echo.Body)
	}

	reason := "GONE"
	fail, err := c.EchoServiceFailWithResponse(ctx, 5, &openapiclient.EchoServiceFailParams{Reason: &reason})
	if err != nil {
		t.Fatal(err)
	}
	if fail.StatusCode() != 404 || fail.JSONDefault == nil || *fail.JSONDefault.Code != 5 || len(*fail.JSONDefault.Details) != 1 {
		t.Fatalf("Fail: %d %s", fail.StatusCode(), fail.Body)
	}

	d := "0.01s"
	sleep, err := c.EchoServiceSleepWithResponse(ctx, &openapiclient.EchoServiceSleepParams{Duration: &d})
	if err != nil {
		t.Fatal(err)
	}
	if sleep.StatusCode() != 200 || sleep.JSON200 == nil || sleep.JSON200.DeadlineLeft == nil {
		t.Fatalf("Sleep: %d %s", sleep.StatusCode(), sleep.Body)
	}
	count, err := c.EchoServiceCountWithResponse(ctx, openapiclient.V1CountRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if count.StatusCode() != 200 || count.JSON200 == nil || *count.JSON200.Count != "1" {
		t.Fatalf("Count: %d %s", count.StatusCode(), count.Body)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Two packages' services of one short name get the same operation ids from
// protoc-gen-openapiv2; merged, each colliding id becomes unique and stays
// the same from one build to the next.
func TestOpenAPIOperationIDsUnique(t *testing.T) {
	doc := func(path string) []byte {
		return fmt.Appendf(nil, `{"swagger":"2.0","info":{"title":"t","version":"1"},"paths":{%q:{"get":{"operationId":"UsersService_GetUser",
			"responses":{"200":{"description":"ok"}}}}}}`, path)
	}
	cc, _ := startGRPC(t)
	var first []byte
	for range 3 {
		g, err := gateway.New(cc, gateway.WithServices(echoService()), gateway.WithLogger(quietLogger()),
			gateway.WithOpenAPI(doc("/v1/users/{id}"), doc("/v2/users/{id}")))
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest("GET", gateway.PathOpenAPIv3, nil))
		var v3 struct {
			Paths map[string]map[string]struct {
				OperationID string `json:"operationId"`
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &v3); err != nil {
			t.Fatal(err)
		}
		a, b := v3.Paths["/v1/users/{id}"]["get"].OperationID, v3.Paths["/v2/users/{id}"]["get"].OperationID
		if a == "" || a == b {
			t.Fatalf("operation ids %q and %q, want two different ones", a, b)
		}
		if first == nil {
			first = rec.Body.Bytes()
		} else if !bytes.Equal(first, rec.Body.Bytes()) {
			t.Fatalf("the document differs from one build to the next")
		}
	}
}
