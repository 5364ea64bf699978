package system

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// SetupTracing exports the spans of this process over OTLP when the
// standard OpenTelemetry variables ask for it: OTEL_EXPORTER_OTLP_ENDPOINT
// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, OTEL_TRACES_EXPORTER unset or
// "otlp". OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL chooses "http/protobuf" (the
// default) or "grpc"; the exporters read the other OTEL_EXPORTER_OTLP_*
// variables themselves (headers, TLS, timeout). The service is named by
// OTEL_SERVICE_NAME, else "purista-example-<component>"; OTEL_RESOURCE_ATTRIBUTES
// adds attributes. The TracerProvider becomes the OpenTelemetry global one,
// which the transports and the gateway use when given none.
//
// It returns a function that flushes and stops the exporter, and false
// when no exporter was asked for.
func SetupTracing(ctx context.Context, component string) (shutdown func(context.Context) error, enabled bool, err error) {
	none := func(context.Context) error { return nil }
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return none, false, nil
	}
	switch e := os.Getenv("OTEL_TRACES_EXPORTER"); e {
	case "", "otlp":
	case "none":
		return none, false, nil
	default:
		return none, false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q is not supported by the example binaries: use otlp or none", e)
	}
	protocolVar := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	protocol := os.Getenv(protocolVar)
	if protocol == "" {
		protocolVar = "OTEL_EXPORTER_OTLP_PROTOCOL"
		protocol = os.Getenv(protocolVar)
	}
	var exp *otlptrace.Exporter
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return none, false, fmt.Errorf("%s=%q is not supported: use http/protobuf or grpc", protocolVar, protocol)
	}
	if err != nil {
		return none, false, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	name := os.Getenv("OTEL_SERVICE_NAME")
	if strings.TrimSpace(name) == "" {
		name = "purista-example-" + component
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(semconv.ServiceName(name)), resource.WithFromEnv())
	if err != nil {
		return none, false, fmt.Errorf("OpenTelemetry resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, true, nil
}
