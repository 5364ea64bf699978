package kafka

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/purista-go/purista/internal/dispatch"
	"github.com/purista-go/purista/internal/eventing"
	"github.com/purista-go/purista/internal/telemetry"
)

// WithTracerProvider makes the spans of calls, requests, replies and events
// with tp (docs/observability.md). Without it they go to the OpenTelemetry
// global TracerProvider, which makes none until the program sets one; the
// trace context of a call travels in its records either way.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return commonOption(func(c *commonConfig) { c.tracerProvider = tp })
}

// WithMetrics registers the series of calls and events per service and
// method on reg: latency histograms, time waited in the topic, in-flight
// gauges, results by code, retries, dead letters, and (for a Server) the
// consumer lag of its groups per partition. Several clients and servers may
// share reg. Without it they record nothing.
func WithMetrics(reg prometheus.Registerer) Option {
	return commonOption(func(c *commonConfig) { c.metrics = reg })
}

// initTelemetry sets up the tracer and the metrics of b's options.
func (b *base) initTelemetry() error {
	b.tracer = telemetry.NewTracer(b.cfg.tracerProvider)
	if b.cfg.metrics == nil {
		return nil
	}
	m, err := telemetry.NewMetrics(b.cfg.metrics)
	if err != nil {
		return err
	}
	b.metrics = m
	return nil
}

// headerCarrier lets a propagator read and write record headers.
type headerCarrier struct{ h *[]kafka.Header }

func (c headerCarrier) Get(key string) string {
	v, _ := headerValue(*c.h, key)
	return v
}

func (c headerCarrier) Set(key, value string) {
	for i := range *c.h {
		if (*c.h)[i].Key == key {
			(*c.h)[i].Value = []byte(value)
			return
		}
	}
	*c.h = append(*c.h, kafka.Header{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.h))
	for i, h := range *c.h {
		keys[i] = h.Key
	}
	return keys
}

// injectTrace puts the trace context of ctx into headers, replacing the
// traceparent/tracestate the caller's metadata carried. Without a span in
// ctx they are left as they are: a caller that traces by hand still has
// its trace context carried verbatim.
func injectTrace(ctx context.Context, headers []kafka.Header) []kafka.Header {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return headers
	}
	out := headers[:0]
	for _, h := range headers {
		if h.Key != hdrTraceparent && h.Key != hdrTracestate {
			out = append(out, h)
		}
	}
	telemetry.Propagator.Inject(ctx, headerCarrier{&out})
	return out
}

// extractTrace returns ctx with the remote span context of a record's
// headers.
func extractTrace(ctx context.Context, headers []kafka.Header) context.Context {
	return telemetry.Propagator.Extract(ctx, headerCarrier{&headers})
}

// observeCall wraps a ClientConn's round trip in the call's client span and
// metrics.
func (c *ClientConn) observeCall(next grpc.UnaryInvoker) grpc.UnaryInvoker {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		ctx, span := c.tracer.Start(ctx, telemetry.RPCName(method), trace.SpanKindClient, func() []attribute.KeyValue { return telemetry.RPCAttrs(method) })
		series := c.metrics.Client(method)
		start := time.Now()
		series.Start()
		err := next(ctx, method, req, reply, cc, opts...)
		series.Done(start, err)
		telemetry.End(span, err, false)
		return err
	}
}

// sendTraced queues msg as sendAsync does, under a producer span that ends
// when the broker acknowledged the record or the write was given up, and
// with the span's trace context in the record's headers.
func (b *base) sendTraced(ctx context.Context, topic string, partition int, msg kafka.Message, id string) (<-chan error, error) {
	ctx, span := b.tracer.StartMessaging(ctx, telemetry.Send, topic, func() []attribute.KeyValue {
		return telemetry.MessagingAttrs(telemetry.Send, topic, partition, msg.Key, "", id, -1)
	})
	msg.Headers = injectTrace(ctx, msg.Headers)
	if !span.IsRecording() {
		span.End()
		return b.prod.sendAsync(ctx, topic, partition, msg)
	}
	failed := make(chan error, 1)
	pr := &pendingRecord{msg: msg, deadline: recordDeadline(ctx), then: func(err error) {
		telemetry.EndAt(span, time.Now(), err) // off the partition writer's goroutine
		if err != nil {
			failed <- err
		}
	}}
	if err := b.prod.enqueue(ctx, topic, partition, pr); err != nil {
		telemetry.EndErr(span, err)
		return nil, err
	}
	return failed, nil
}

// sendKeyedTraced is sendKeyed under a producer span, with its trace
// context in the record's headers: the span of an event's publication.
func (b *base) sendKeyedTraced(ctx context.Context, topic string, m kafka.Message, id string) error {
	ctx, span := b.tracer.StartMessaging(ctx, telemetry.Send, topic, func() []attribute.KeyValue {
		return telemetry.MessagingAttrs(telemetry.Send, topic, -1, m.Key, "", id, -1)
	})
	m.Headers = injectTrace(ctx, m.Headers)
	err := b.sendKeyed(ctx, topic, m)
	telemetry.EndErr(span, err)
	return err
}

// requestObs follows one request record through a Server: its process
// span, the handler's server span inside it, and the method's metrics.
type requestObs struct {
	process, server trace.Span
	processCtx      context.Context
	series          *telemetry.Series
	start           time.Time
	b               *base
	replyTo         string
}

// observeRequest starts the spans and metrics of a request record about to
// be handled by method; ctx becomes the handler's.
func (s *Server) observeRequest(ctx context.Context, m kafka.Message, method dispatch.Method, h requestHeaders) (context.Context, requestObs) {
	o := requestObs{b: s.base, series: s.metrics.Server(method.FullMethod), start: time.Now(), replyTo: h.replyTo}
	ctx, o.process = s.tracer.StartMessaging(extractTrace(ctx, m.Headers), telemetry.Process, m.Topic, func() []attribute.KeyValue {
		return telemetry.MessagingAttrs(telemetry.Process, m.Topic, m.Partition, m.Key, s.groupID(method.Service), h.id, m.Offset)
	})
	o.processCtx = ctx
	ctx, o.server = s.tracer.Start(ctx, telemetry.RPCName(method.FullMethod), trace.SpanKindServer, func() []attribute.KeyValue {
		return telemetry.RPCAttrs(method.FullMethod)
	})
	o.series.Waited(m.Time)
	o.series.Start()
	return ctx, o
}

// replied ends the handler's span and records its outcome; the function
// it returns is the reply's then: it ends the reply's span and the record's
// once the reply is written, and calls done.
func (o requestObs) replied(err error, done func()) func() {
	o.series.Done(o.start, err)
	telemetry.End(o.server, err, true)
	if !o.process.IsRecording() {
		o.process.End()
		return done
	}
	_, reply := o.b.tracer.StartMessaging(o.processCtx, telemetry.Send, o.replyTo, func() []attribute.KeyValue {
		return telemetry.MessagingAttrs(telemetry.Send, o.replyTo, 0, nil, "", "", -1)
	})
	return func() {
		// On the partition writer's goroutine: the spans end off it.
		now := time.Now()
		telemetry.EndAt(reply, now, nil)
		telemetry.EndAt(o.process, now, nil)
		done()
	}
}

// countExpired counts a request of a served method skipped because its
// deadline passed in the topic.
func (s *Server) countExpired(method string) {
	if s.metrics == nil {
		return
	}
	if _, err := s.disp.Lookup(method); err == nil {
		s.metrics.Server(method).Count(codes.DeadlineExceeded)
	}
}

// eventObs follows one event through a subscriber.
type eventObs struct {
	span   trace.Span
	series *telemetry.Series
	start  time.Time
}

// observeEvent starts the span and metrics of an event delivered to
// subscriber sb: a process span that starts a trace of its own, linked to
// the publication's span (the publisher does not wait for its
// subscribers, so they are not part of its call's trace). ctx becomes the
// subscriber's.
func (sub *subscription) observeEvent(ctx context.Context, m kafka.Message, h eventHeaders, sb eventing.Subscriber) (context.Context, *eventObs) {
	s := sub.s
	o := &eventObs{series: s.metrics.Event(sb.Method.FullMethod, sub.event.Name), start: time.Now()}
	var opts []trace.SpanStartOption
	if sc := trace.SpanContextFromContext(extractTrace(context.Background(), m.Headers)); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	opts = append(opts, trace.WithNewRoot())
	ctx, o.span = s.tracer.StartMessaging(ctx, telemetry.Process, m.Topic, func() []attribute.KeyValue {
		return append(telemetry.MessagingAttrs(telemetry.Process, m.Topic, m.Partition, m.Key, sub.group, h.id, m.Offset),
			attribute.String("purista.event", sub.event.Name), attribute.String("purista.subscriber", telemetry.RPCName(sb.Method.FullMethod)))
	}, opts...)
	o.series.Waited(h.published)
	return ctx, o
}

// done records the delivery's outcome after attempts tries.
func (o *eventObs) done(err error, attempts int) {
	o.series.Observe(o.start, err)
	if o.span.IsRecording() {
		o.span.SetAttributes(attribute.Int("purista.attempts", attempts))
	}
	telemetry.End(o.span, err, true)
}
