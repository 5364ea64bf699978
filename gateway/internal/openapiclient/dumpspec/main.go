// Command dumpspec writes the OpenAPI 3 document a gateway serves for the
// given OpenAPI 2 documents of the Echo test service, indented, as the committed input of the
// generated test client.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"

	"google.golang.org/grpc"

	"github.com/purista-go/purista/gateway"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
)

// noConn is never called: dumpspec only asks for the OpenAPI document.
type noConn struct{}

func (noConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return errors.New("dumpspec: no connection")
}

func (noConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("dumpspec: no connection")
}

func main() {
	in := flag.String("in", "", "OpenAPI 2 document (protoc-gen-openapiv2 output)")
	out := flag.String("out", "", "where to write the OpenAPI 3 document")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "dumpspec:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	v2, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	doc, err := ServedV3(v2)
	if err != nil {
		return err
	}
	return os.WriteFile(out, doc, 0o644)
}

// ServedV3 returns what a gateway with the document serves on
// /openapi.v3.json, indented.
func ServedV3(v2 []byte) ([]byte, error) {
	g, err := gateway.New(noConn{}, gateway.WithOpenAPI(v2),
		// The service, for its rules and name in the document.
		gateway.WithServices(gateway.Service{Contract: testingv1.EchoService_PuristaService, RegisterHTTP: testingv1.RegisterEchoServiceHTTP}))
	if err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", gateway.PathOpenAPIv3, nil))
	if rec.Code != 200 {
		return nil, fmt.Errorf("%s: status %d: %s", gateway.PathOpenAPIv3, rec.Code, rec.Body)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, rec.Body.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}
