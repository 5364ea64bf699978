package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/purista-go/purista/internal/telemetry"
)

// unmatchedRoute labels requests that matched no route (404, 405).
const unmatchedRoute = "unmatched"

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) (*metrics, *prometheus.Registry, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "purista", Subsystem: "gateway", Name: "http_requests_total",
			Help: "HTTP requests answered by the gateway, by route (\"VERB /path\" template, or \"unmatched\") and HTTP status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "purista", Subsystem: "gateway", Name: "http_request_duration_seconds",
			Help:    "Time from receiving a request's headers to writing its response, by route.",
			Buckets: telemetry.Buckets,
		}, []string{"route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "purista", Subsystem: "gateway", Name: "http_requests_in_flight",
			Help: "HTTP requests the gateway is serving now.",
		}),
	}
	// A second gateway on the same registry shares the collectors.
	var err error
	m.requests, err = telemetry.Register(reg, m.requests)
	if err != nil {
		return nil, nil, err
	}
	if m.duration, err = telemetry.Register(reg, m.duration); err != nil {
		return nil, nil, err
	}
	if m.inflight, err = telemetry.Register(reg, m.inflight); err != nil {
		return nil, nil, err
	}
	return m, reg, nil
}

// routeMetrics are one route's series, resolved once instead of hashing
// label values on every request.
type routeMetrics struct {
	m        *metrics
	label    string
	duration prometheus.Observer
	byStatus sync.Map // int → prometheus.Counter
}

func (m *metrics) forRoute(label string) *routeMetrics {
	return &routeMetrics{m: m, label: label, duration: m.duration.WithLabelValues(label)}
}

func (rm *routeMetrics) observe(status int, d time.Duration) {
	c, ok := rm.byStatus.Load(status)
	if !ok {
		c, _ = rm.byStatus.LoadOrStore(status, rm.m.requests.WithLabelValues(rm.label, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
	rm.duration.Observe(d.Seconds())
	rm.m.inflight.Dec()
}
