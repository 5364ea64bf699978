package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/purista-go/purista"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/transport/inproc"
)

// The generated gen/purista/testing/v1/echo.purista.go, compiled and used
// the way services use it.

func TestGeneratedEchoDescribesItsContract(t *testing.T) {
	svc := testingv1.EchoService_PuristaService
	method := func(fullMethod string) *purista.Method {
		for _, m := range svc.Methods {
			if m.FullMethod == fullMethod {
				return m
			}
		}
		t.Fatalf("%s is not in the contract", fullMethod)
		return nil
	}
	if svc.Name != "purista.testing.v1.EchoService" {
		t.Errorf("Name = %q", svc.Name)
	}
	if got, want := svc.RequestTopic, "purista.rpc.purista.testing.v1.EchoService"; got != want {
		t.Errorf("RequestTopic = %q, want %q", got, want)
	}
	if svc.Partitions != 3 {
		t.Errorf("Partitions = %d, want 3", svc.Partitions)
	}
	if sleep := method(testingv1.EchoService_Sleep_FullMethodName); sleep.Timeout != 3*time.Second {
		t.Errorf("Sleep: %+v; want Timeout 3s", sleep)
	}
	if count := method(testingv1.EchoService_Count_FullMethodName); !count.Idempotent {
		t.Errorf("Count: %+v; want Idempotent", count)
	}
	echo := method(testingv1.EchoService_Echo_FullMethodName)
	if echo.PartitionKeyField != "key" {
		t.Fatalf("Echo: %+v; want partition key field key", echo)
	}
	if got := string(echo.PartitionKey(&testingv1.EchoRequest{Key: "tenant-7"})); got != "tenant-7" {
		t.Errorf("PartitionKey = %q, want tenant-7", got)
	}
	if got := echo.PartitionKey(&testingv1.CountRequest{}); got != nil {
		t.Errorf("PartitionKey of another message = %q, want nil", got)
	}
	if len(echo.HTTP) != 1 || echo.HTTP[0] != (purista.HTTPRule{Method: "POST", Pattern: "/v1/echo", Body: "*"}) {
		t.Errorf("Echo HTTP = %+v", echo.HTTP)
	}
}

func TestGeneratedEchoServesOverInproc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := inproc.New(inproc.WithContracts(testingv1.EchoService_PuristaService))
	defer func() { _ = ch.Close() }()
	testingv1.RegisterEchoServiceServer(ch, &conformance.EchoServer{Name: "one"})

	// A gRPC call through the generated client.
	resp, err := testingv1.NewEchoServiceClient(ch).Echo(ctx, &testingv1.EchoRequest{Message: "hello", Key: "k"})
	if err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if resp.GetMessage() != "hello" || resp.GetServer() != "one" {
		t.Errorf("Echo = %v", resp)
	}

	// An HTTP call through the gateway registration.
	mux := runtime.NewServeMux()
	if err := testingv1.RegisterEchoServiceHTTP(ctx, mux, ch); err != nil {
		t.Fatalf("RegisterHTTP: %v", err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/echo", strings.NewReader(`{"message":"over http"}`))
	if err != nil {
		t.Fatal(err)
	}
	httpResp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("POST /v1/echo: %v", err)
	}
	defer func() { _ = httpResp.Body.Close() }()
	body, _ := io.ReadAll(httpResp.Body)
	if httpResp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"over http"`) {
		t.Errorf("POST /v1/echo = %d %s", httpResp.StatusCode, body)
	}
}

// TestCommittedGenIsCurrent runs the plugin binary on the repository's own
// protos and compares the result with the committed gen/ files, so a
// plugin change that is not regenerated fails here and not only in
// make check-generated.
func TestCommittedGenIsCurrent(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(root, "proto")
	resp := respond(compileRequest(t, dir, caseProtos(t, dir), "paths=source_relative"))
	if resp.Error != nil {
		t.Fatalf("plugin failed on the repository's protos: %s", resp.GetError())
	}
	committed := puristaTree(readTree(t, filepath.Join(root, "gen")))
	for _, f := range resp.GetFile() {
		if committed[f.GetName()] != f.GetContent() {
			t.Errorf("gen/%s is not what the plugin writes now: run buf generate (make generate) and commit it", f.GetName())
		}
		delete(committed, f.GetName())
	}
	for name := range committed {
		t.Errorf("gen/%s is no longer generated: run buf generate (make generate) and commit the removal", name)
	}
}

// puristaTree keeps the .purista.go files of a tree.
func puristaTree(tree map[string]string) map[string]string {
	for name := range tree {
		if !strings.HasSuffix(name, ".purista.go") {
			delete(tree, name)
		}
	}
	return tree
}
