package telemetry

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"go.opentelemetry.io/otel/attribute"
)

// BenchmarkSpan is what one span of a call costs: a consumer span with
// the messaging attributes, started and ended, with no TracerProvider (the
// global no-op), and with an SDK one sampling every span into a batch
// processor whose exporter drops them.
func BenchmarkSpan(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	for _, tc := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"noop", noop.NewTracerProvider()}, {"sdk", sdk}} {
		tr := NewTracer(tc.tp)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				_, span := tr.Start(ctx, ProcessName("purista.rpc.orders.v1.OrdersService"), trace.SpanKindConsumer, func() []attribute.KeyValue {
					return MessagingAttrs(Process, "purista.rpc.orders.v1.OrdersService", 2, []byte("u-1"), "purista.orders.v1.OrdersService", "0123456789abcdef0123456789abcdef", 1234)
				})
				End(span, nil, true)
			}
		})
	}
}
