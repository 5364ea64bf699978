package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTracerFollowsTheGlobalProvider: a Tracer on the global provider
// makes no span while the program has set none, carries the trace context
// of its context on as it is, and records spans once a provider is set,
// also when it was made before.
func TestTracerFollowsTheGlobalProvider(t *testing.T) {
	tr := NewTracer(nil)
	if !tr.off() {
		t.Fatalf("the global TracerProvider before one is set (%T) is not recognised: every call would pay for spans that record nothing; check isUnsetGlobal against the OpenTelemetry version", otel.GetTracerProvider())
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	got, span := tr.StartMessaging(ctx, Process, "t", func() []attribute.KeyValue { t.Error("attributes built for a span that records nothing"); return nil })
	if span.IsRecording() || !trace.SpanContextFromContext(got).Equal(parent) {
		t.Fatalf("unset global provider: span recording %v, trace context %v; want none recorded and the parent's %v carried on", span.IsRecording(), trace.SpanContextFromContext(got), parent)
	}
	span.End()

	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	if tr.off() {
		t.Fatal("a Tracer made before the program set its TracerProvider still makes no spans")
	}
	got, span = tr.StartMessaging(ctx, Send, "t", nil)
	span.End()
	sc := trace.SpanContextFromContext(got)
	if ended := rec.Ended(); len(ended) != 1 || ended[0].Name() != "send t" || sc.TraceID() != parent.TraceID() || sc.SpanID() == parent.SpanID() {
		t.Fatalf("after SetTracerProvider: %d spans ended, trace context %v; want one span \"send t\", a child of %v", len(rec.Ended()), sc, parent)
	}
	if NewTracer(nil).off() {
		t.Fatal("a Tracer made after SetTracerProvider makes no spans")
	}
}
