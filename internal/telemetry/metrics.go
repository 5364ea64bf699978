package telemetry

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Buckets are the latency buckets of every purista histogram, in seconds:
// from the 100 µs of a call on an idle embedded broker to the 30 s default
// timeout.
var Buckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics are the Prometheus series of calls and events per service and
// method. A nil *Metrics records nothing.
type Metrics struct {
	clientDur, serverDur, serverWait, eventDur, eventWait *prometheus.HistogramVec
	clientCalls, serverCalls, eventHandled                *prometheus.CounterVec
	clientRetries, eventRetries, eventDead                *prometheus.CounterVec
	clientInflight, serverInflight                        *prometheus.GaugeVec

	client, server, event sync.Map // key → *Series
}

// NewMetrics registers the series on reg. Several transports may share a
// registry: the second finds the series the first registered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	sm := []string{"service", "method"}
	smc := []string{"service", "method", "code"}
	sme := []string{"service", "method", "event"}
	smec := []string{"service", "method", "event", "code"}
	hist := func(name, help string, labels []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "purista", Name: name, Help: help, Buckets: Buckets}, labels)
	}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "purista", Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "purista", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		clientDur:      hist("rpc_client_duration_seconds", "Time from a call's start to its reply (or error), retries included, as the caller saw it.", sm),
		clientCalls:    counter("rpc_client_calls_total", "Calls made, by the gRPC code they ended with.", smc),
		clientRetries:  counter("rpc_client_retries_total", "Tries of keyed calls made again after UNAVAILABLE.", sm),
		clientInflight: gauge("rpc_client_in_flight", "Calls waiting for their reply now.", sm),
		serverDur:      hist("rpc_server_duration_seconds", "Time a handler took, interceptors included.", sm),
		serverWait:     hist("rpc_server_queue_wait_seconds", "Time a request waited in its topic: from the call's start (the record's timestamp) to a handler taking it.", sm),
		serverCalls:    counter("rpc_server_calls_total", "Requests handled, by the gRPC code the handler answered (DEADLINE_EXCEEDED for requests that expired in the topic).", smc),
		serverInflight: gauge("rpc_server_in_flight", "Handlers running now.", sm),
		eventDur:       hist("event_duration_seconds", "Time a subscriber took to handle an event, every attempt included.", sme),
		eventWait:      hist("event_queue_wait_seconds", "Time an event waited in its topic: from its publication to a subscriber taking it.", sme),
		eventHandled:   counter("event_handled_total", "Events handled by a subscriber, by the gRPC code of the last attempt (OK, or the error that dead-lettered it).", smec),
		eventRetries:   counter("event_retries_total", "Attempts of a subscriber made again after it failed.", sme),
		eventDead:      counter("event_dead_letters_total", "Events dead-lettered for a subscriber: failed every attempt, or not decodable.", sme),
	}
	var errs []error
	register(reg, &m.clientDur, &errs)
	register(reg, &m.clientCalls, &errs)
	register(reg, &m.clientRetries, &errs)
	register(reg, &m.clientInflight, &errs)
	register(reg, &m.serverDur, &errs)
	register(reg, &m.serverWait, &errs)
	register(reg, &m.serverCalls, &errs)
	register(reg, &m.serverInflight, &errs)
	register(reg, &m.eventDur, &errs)
	register(reg, &m.eventWait, &errs)
	register(reg, &m.eventHandled, &errs)
	register(reg, &m.eventRetries, &errs)
	register(reg, &m.eventDead, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register purista metrics: %w", err)
	}
	return m, nil
}

// register registers *c on reg; when reg has an equal collector already
// (another transport of the process registered it), *c becomes that one.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C, errs *[]error) {
	var err error
	if *c, err = Register(reg, *c); err != nil {
		*errs = append(*errs, err)
	}
}

// Register registers c on reg and returns it, or the collector of the same
// description registered before: several clients, servers or gateways
// sharing one registry share their series.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// Series are one method's series, resolved once: a call does not hash
// label values.
type Series struct {
	dur, wait prometheus.Observer
	retries   prometheus.Counter
	dead      prometheus.Counter
	inflight  prometheus.Gauge
	calls     *prometheus.CounterVec
	labels    []string
	byCode    sync.Map // codes.Code → prometheus.Counter
}

// Client returns the caller's series of fullMethod.
func (m *Metrics) Client(fullMethod string) *Series {
	if m == nil {
		return nil
	}
	return m.series(&m.client, fullMethod, "", func(l []string) *Series {
		return &Series{dur: m.clientDur.WithLabelValues(l...), retries: m.clientRetries.WithLabelValues(l...),
			inflight: m.clientInflight.WithLabelValues(l...), calls: m.clientCalls}
	})
}

// Server returns the server's series of fullMethod.
func (m *Metrics) Server(fullMethod string) *Series {
	if m == nil {
		return nil
	}
	return m.series(&m.server, fullMethod, "", func(l []string) *Series {
		return &Series{dur: m.serverDur.WithLabelValues(l...), wait: m.serverWait.WithLabelValues(l...),
			inflight: m.serverInflight.WithLabelValues(l...), calls: m.serverCalls}
	})
}

// Event returns the series of subscriber fullMethod handling event.
func (m *Metrics) Event(fullMethod, event string) *Series {
	if m == nil {
		return nil
	}
	return m.series(&m.event, fullMethod, event, func(l []string) *Series {
		return &Series{dur: m.eventDur.WithLabelValues(l...), wait: m.eventWait.WithLabelValues(l...),
			retries: m.eventRetries.WithLabelValues(l...), dead: m.eventDead.WithLabelValues(l...), calls: m.eventHandled}
	})
}

func (m *Metrics) series(cache *sync.Map, fullMethod, event string, mk func([]string) *Series) *Series {
	key := fullMethod
	if event != "" {
		key += "\x00" + event
	}
	if s, ok := cache.Load(key); ok {
		return s.(*Series)
	}
	svc, method := splitMethod(fullMethod)
	l := []string{svc, method}
	if event != "" {
		l = append(l, event)
	}
	s := mk(l)
	s.labels = l
	got, _ := cache.LoadOrStore(key, s)
	return got.(*Series)
}

func splitMethod(fullMethod string) (string, string) {
	name := RPCName(fullMethod)
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[:i], name[i+1:]
		}
	}
	return "", name
}

// Start counts a call or handler in flight; the caller calls Done once.
func (s *Series) Start() {
	if s != nil && s.inflight != nil {
		s.inflight.Inc()
	}
}

// Done records a call that Start counted, begun at start, ending with err.
func (s *Series) Done(start time.Time, err error) {
	if s == nil {
		return
	}
	if s.inflight != nil {
		s.inflight.Dec()
	}
	s.Observe(start, err)
}

// Observe records an outcome without an in-flight count.
func (s *Series) Observe(start time.Time, err error) {
	if s == nil {
		return
	}
	s.dur.Observe(time.Since(start).Seconds())
	s.Count(status.Code(err))
}

// Count counts an outcome by its code, without a duration.
func (s *Series) Count(code codes.Code) {
	if s == nil {
		return
	}
	c, ok := s.byCode.Load(code)
	if !ok {
		c, _ = s.byCode.LoadOrStore(code, s.calls.WithLabelValues(append(append([]string(nil), s.labels...), CodeName(code))...))
	}
	c.(prometheus.Counter).Inc()
}

// Waited records the time a request or event waited in its topic since
// written (a zero time records nothing).
func (s *Series) Waited(written time.Time) {
	if s == nil || s.wait == nil || written.IsZero() {
		return
	}
	s.wait.Observe(max(time.Since(written), 0).Seconds())
}

// Retry counts one more try.
func (s *Series) Retry() {
	if s != nil && s.retries != nil {
		s.retries.Inc()
	}
}

// DeadLetter counts an event dead-lettered.
func (s *Series) DeadLetter() {
	if s != nil && s.dead != nil {
		s.dead.Inc()
	}
}
