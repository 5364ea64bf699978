// Package telemetry holds what every purista transport and the gateway
// share to make traces and metrics: the OpenTelemetry spans of calls and
// events, named after the RPC and messaging semantic conventions, and the
// Prometheus series per service and method. docs/observability.md describes
// what they record.
//
// Everything here is cheap when unused: with no TracerProvider set, the
// OpenTelemetry global one makes non-recording spans that only carry the
// caller's trace context on, and attributes are built only for recording
// spans; a nil *Metrics records nothing.
package telemetry

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ScopeName is the instrumentation scope of purista's spans.
const ScopeName = "github.com/purista-go/purista"

// RPCSystem is the rpc.system.name of purista's calls: the codes and
// messages are gRPC's, the transport is not.
var RPCSystem = semconv.RPCSystemNameKey.String("purista")

// Propagator is how trace context travels in records and HTTP headers:
// W3C traceparent/tracestate, as docs/protocol.md specifies.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Tracer makes purista's spans.
type Tracer struct {
	t trace.Tracer
	// unset is the OpenTelemetry global TracerProvider as it is before the
	// program sets one, when the Tracer follows the global one: while it
	// is still the global one, no span would record or carry anything the
	// context does not already hold, and Start makes none.
	unset trace.TracerProvider
}

// NewTracer returns a Tracer on tp, or on the OpenTelemetry global
// TracerProvider when tp is nil (a no-op until the program sets one).
func NewTracer(tp trace.TracerProvider) Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
		if isUnsetGlobal(tp) {
			return Tracer{t: tp.Tracer(ScopeName), unset: tp}
		}
	}
	return Tracer{t: tp.Tracer(ScopeName)}
}

// globalPkg is the package of the TracerProvider otel.GetTracerProvider
// returns until the program sets one: it hands out tracers that delegate
// to the provider set later, and until then spans that record nothing.
const globalPkg = "go.opentelemetry.io/otel/internal/global"

// isUnsetGlobal reports whether tp is the global TracerProvider before the
// program set one. Should OpenTelemetry move that type, the answer is
// false and spans are started as before, only slower.
func isUnsetGlobal(tp trace.TracerProvider) bool {
	t := reflect.TypeOf(tp)
	return t != nil && t.Kind() == reflect.Pointer && t.Elem().PkgPath() == globalPkg
}

// off reports whether a span started now would be one of the global
// TracerProvider before the program set one: one that records nothing and
// carries the context's trace context on unchanged.
func (t Tracer) off() bool {
	return t.unset != nil && otel.GetTracerProvider() == t.unset
}

// Start starts a span of kind on ctx. attrs is called only when the span
// records, so that an unsampled or untraced call builds no attributes.
// Before the program sets a TracerProvider (and without one of its own) it
// returns ctx as it is, whose trace context goes on as a non-recording
// span's would, and a span that does nothing.
func (t Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs func() []attribute.KeyValue, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.off() {
		return ctx, noSpan
	}
	return t.start(ctx, name, kind, attrs, opts...)
}

// StartMessaging starts the span of a record sent to (op Send, a producer
// span) or processed from (op Process, a consumer span) topic; its name is
// built only when a span is made.
func (t Tracer) StartMessaging(ctx context.Context, op attribute.KeyValue, topic string, attrs func() []attribute.KeyValue, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.off() {
		return ctx, noSpan
	}
	if op == Process {
		return t.start(ctx, ProcessName(topic), trace.SpanKindConsumer, attrs, opts...)
	}
	return t.start(ctx, SendName(topic), trace.SpanKindProducer, attrs, opts...)
}

// noSpan is the span of a Tracer that makes none.
var noSpan trace.Span = noop.Span{}

func (t Tracer) start(ctx context.Context, name string, kind trace.SpanKind, attrs func() []attribute.KeyValue, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if len(opts) == 0 && int(kind) < len(kindOptions) {
		opts = kindOptions[kind] // no allocation per span
	} else {
		opts = append(opts, trace.WithSpanKind(kind))
	}
	ctx, span := t.t.Start(ctx, name, opts...)
	if attrs != nil && span.IsRecording() {
		span.SetAttributes(attrs()...)
	}
	return ctx, span
}

var kindOptions = func() [6][]trace.SpanStartOption {
	var o [6][]trace.SpanStartOption
	for k := range o {
		o[k] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKind(k))}
	}
	return o
}()

// RPCName is the span name of a call: "pkg.Service/Method" for the full
// method "/pkg.Service/Method".
func RPCName(fullMethod string) string {
	if len(fullMethod) > 0 && fullMethod[0] == '/' {
		return fullMethod[1:]
	}
	return fullMethod
}

// RPCAttrs are the attributes of a call's client or server span.
func RPCAttrs(fullMethod string) []attribute.KeyValue {
	return []attribute.KeyValue{RPCSystem, semconv.RPCMethod(RPCName(fullMethod))}
}

// MessagingAttrs are the attributes of a span sending or processing a
// record on a Kafka topic partition; partition < 0 leaves it out, and so
// do an empty key, group or id and an offset < 0.
func MessagingAttrs(op attribute.KeyValue, topic string, partition int, key []byte, group, id string, offset int64) []attribute.KeyValue {
	a := make([]attribute.KeyValue, 0, 8)
	a = append(a, semconv.MessagingSystemKafka, op, semconv.MessagingOperationName(opName(op)), semconv.MessagingDestinationName(topic))
	if partition >= 0 {
		a = append(a, semconv.MessagingDestinationPartitionID(strconv.Itoa(partition)))
	}
	if len(key) > 0 {
		a = append(a, semconv.MessagingKafkaMessageKey(string(key)))
	}
	if group != "" {
		a = append(a, semconv.MessagingConsumerGroupName(group))
	}
	if id != "" {
		a = append(a, semconv.MessagingMessageID(id))
	}
	if offset >= 0 {
		a = append(a, semconv.MessagingKafkaOffset(int(offset)))
	}
	return a
}

func opName(op attribute.KeyValue) string {
	if op == semconv.MessagingOperationTypeProcess {
		return "process"
	}
	return "send"
}

// Send and Process are the messaging operation types of purista's spans.
var (
	Send    = semconv.MessagingOperationTypeSend
	Process = semconv.MessagingOperationTypeProcess
)

// SendName and ProcessName are the span names of a record sent to, or
// processed from, topic.
func SendName(topic string) string    { return "send " + topic }
func ProcessName(topic string) string { return "process " + topic }

// End ends span with the outcome err of a call: its gRPC code as
// rpc.response.status_code, and an error status for codes a server
// (server true) or a caller counts as failures.
func End(span trace.Span, err error, server bool) {
	if span.IsRecording() {
		code := status.Code(err)
		span.SetAttributes(semconv.RPCResponseStatusCode(CodeName(code)))
		if err != nil && failed(code, server) {
			span.SetAttributes(attribute.String("error.type", CodeName(code)))
			span.SetStatus(otelcodes.Error, status.Convert(err).Message())
		}
	}
	span.End()
}

// EndErr ends span, marking it failed when err is not nil.
func EndErr(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
}

// codeNames are the gRPC codes as the gRPC specification and
// google.rpc.Code spell them.
var codeNames = func() [17]string {
	var names [17]string
	for c := range codes.Code(len(names)) {
		s := c.String()
		var b strings.Builder
		for i, r := range s {
			if i > 0 && unicode.IsUpper(r) && s != "OK" {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToUpper(r))
		}
		names[c] = b.String()
	}
	return names
}()

// CodeName returns code as the gRPC specification spells it: NOT_FOUND.
func CodeName(code codes.Code) string {
	if int(code) < len(codeNames) {
		return codeNames[code]
	}
	return "CODE_" + strconv.Itoa(int(code))
}

// failed follows the RPC conventions: every non-OK code is a client
// error; on a server only the codes that say the server failed.
func failed(code codes.Code, server bool) bool {
	if code == codes.OK {
		return false
	}
	if !server {
		return true
	}
	switch code {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// pendingEnd is a span to end at a time already passed.
type pendingEnd struct {
	span trace.Span
	at   time.Time
	err  error
}

var (
	endQueue     chan pendingEnd
	endQueueOnce sync.Once
)

// EndAt ends span as of at (marking it failed when err is not nil) on a
// goroutine of its own: for spans that end on a goroutine that must not
// spend the time, such as a partition writer's acknowledging a batch of
// records. When the queue is full it ends the span at once.
func EndAt(span trace.Span, at time.Time, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	endQueueOnce.Do(func() {
		endQueue = make(chan pendingEnd, 8192)
		go func() {
			for e := range endQueue {
				endAt(e)
			}
		}()
	})
	select {
	case endQueue <- pendingEnd{span, at, err}:
	default:
		endAt(pendingEnd{span, at, err})
	}
}

func endAt(e pendingEnd) {
	if e.err != nil {
		e.span.SetStatus(otelcodes.Error, e.err.Error())
	}
	e.span.End(trace.WithTimestamp(e.at))
}
