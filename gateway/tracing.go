package gateway

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/purista-go/purista/internal/telemetry"
)

// WithTracerProvider makes the gateway's HTTP server spans with tp; the
// calls it makes are their children (docs/observability.md). Without it
// they go to the OpenTelemetry global TracerProvider, which makes none
// until the program sets one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracerProvider = tp }
}

// RequestIDAttr is the span attribute that carries a request's X-Request-Id.
const RequestIDAttr = "purista.request_id"

// startSpan starts the server span of an API request, the child of the
// trace context the client sent. The request's traceparent becomes the
// span's, so that a connection that forwards it as metadata (in-process,
// plain gRPC) carries the gateway's span rather than the client's.
func (g *Gateway) startSpan(r *http.Request) (*http.Request, trace.Span) {
	ctx := telemetry.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := g.tracer.Start(ctx, r.Method, trace.SpanKindServer, func() []attribute.KeyValue {
		return []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)}
	})
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return r, span
	}
	telemetry.Propagator.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return r.WithContext(ctx), span
}

// endSpan names the span after its route and ends it with the response's
// status: a 5xx is a server error, a 4xx is the client's.
func endSpan(span trace.Span, r *http.Request, route string, status int) {
	if span.IsRecording() {
		if route != unmatchedRoute {
			span.SetName(route)
			if _, path, ok := strings.Cut(route, " "); ok {
				span.SetAttributes(semconv.HTTPRoute(path))
			}
		}
		span.SetAttributes(semconv.HTTPResponseStatusCode(status), attribute.String(RequestIDAttr, r.Header.Get("X-Request-Id")))
		if status >= 500 {
			span.SetStatus(otelcodes.Error, http.StatusText(status))
		}
	}
	span.End()
}
