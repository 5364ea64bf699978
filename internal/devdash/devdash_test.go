package devdash_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/purista-go/purista/internal/devdash"
)

// TestOTLPReceive exports spans with the OpenTelemetry OTLP/HTTP exporter
// to the dashboard and reads them back as a call and its trace.
func TestOTLPReceive(t *testing.T) {
	store := devdash.NewStore(100)
	srv := httptest.NewServer(devdash.Handler(store, func(context.Context) devdash.Overview { return devdash.Overview{} }))
	defer srv.Close()
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "gateway"))))
	tr := tp.Tracer("test")
	ctx, root := tr.Start(ctx, "GET /v1/things/{id}", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", "GET"), attribute.String("url.path", "/v1/things/1"),
		attribute.Int("http.response.status_code", 200), attribute.String("purista.request_id", "rid-1")))
	_, child := tr.Start(ctx, "things.v1.Things/Get", trace.WithSpanKind(trace.SpanKindClient))
	child.End()
	root.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	var calls []devdash.Call
	get(t, srv.URL+"/api/calls", &calls)
	if len(calls) != 1 || calls[0].RequestID != "rid-1" || calls[0].Status != "200" || calls[0].Path != "/v1/things/1" {
		t.Fatalf("calls = %+v", calls)
	}
	var spans []devdash.Span
	get(t, srv.URL+"/api/traces/"+calls[0].TraceID, &spans)
	if len(spans) != 2 || spans[0].Service != "gateway" || spans[1].ParentID != spans[0].SpanID || spans[1].Kind != "client" {
		t.Fatalf("trace = %+v", spans)
	}
}

func TestOTLPBadInput(t *testing.T) {
	h := devdash.Handler(devdash.NewStore(10), func(context.Context) devdash.Overview { return devdash.Overview{} })
	for _, tc := range []struct {
		method, path, ctype, body string
		want                      int
	}{
		{"POST", "/v1/traces", "text/plain", "x", http.StatusUnsupportedMediaType},
		{"POST", "/v1/traces", "application/x-protobuf", "\xff\xff\xff", http.StatusBadRequest},
		{"POST", "/v1/traces", "application/json", "{", http.StatusBadRequest},
		{"GET", "/v1/traces", "", "", http.StatusMethodNotAllowed},
		{"GET", "/api/traces/nothex", "", "", http.StatusBadRequest},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s (%s): %d %s, want %d", tc.method, tc.path, tc.ctype, rec.Code, rec.Body, tc.want)
		}
	}
}

func get(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
