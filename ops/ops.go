// Package ops serves the operational endpoints of a process that runs
// purista services, for Kubernetes probes and Prometheus:
//
//	GET /healthz  200 {"status":"ok"} while the process runs (liveness)
//	GET /readyz   200 {"status":"ready"} when every check passes, else 503
//	              {"status":"unavailable","errors":["..."]} (readiness)
//	GET /metrics  the Prometheus text format
//
// The gateway serves the same endpoints, in the same shapes, on its own
// port; a service process has no HTTP port of its own and serves them with
// this package:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(kafka.NewCollector(map[string]*kafka.Server{"orders": srv}, nil))
//	go http.ListenAndServe(":9090", ops.Handler(reg, srv))
package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The paths Handler serves.
const (
	PathHealth  = "/healthz"
	PathReady   = "/readyz"
	PathMetrics = "/metrics"
)

// Checker reports whether a part of the process can do its work.
// *kafka.Server and *kafka.ClientConn implement it.
type Checker interface {
	Ready(ctx context.Context) error
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) error

// Ready calls f.
func (f CheckerFunc) Ready(ctx context.Context) error { return f(ctx) }

// ReadyTimeout bounds the time /readyz gives all its checks together.
const ReadyTimeout = 2 * time.Second

// Handler returns the handler of the operational endpoints: /readyz runs
// checks, /metrics serves what g gathers (prometheus.DefaultGatherer when
// g is nil). Other paths answer 404, other methods than GET and HEAD 405.
func Handler(g prometheus.Gatherer, checks ...Checker) http.Handler {
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathHealth, PathReady, PathMetrics:
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method "+r.Method+" is not allowed on "+r.URL.Path+" (allowed: GET, HEAD)", http.StatusMethodNotAllowed)
			return
		}
		switch r.URL.Path {
		case PathHealth:
			WriteJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
		case PathReady:
			ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
			defer cancel()
			var problems []string
			for _, c := range checks {
				if err := c.Ready(ctx); err != nil {
					problems = append(problems, err.Error())
				}
			}
			WriteReadiness(w, problems)
		case PathMetrics:
			metrics.ServeHTTP(w, r)
		}
	})
}

// WriteReadiness writes the /readyz answer: ready without problems,
// unavailable (503) with them.
func WriteReadiness(w http.ResponseWriter, problems []string) {
	if len(problems) == 0 {
		WriteJSON(w, http.StatusOK, []byte(`{"status":"ready"}`))
		return
	}
	b, _ := json.Marshal(struct {
		Status string   `json:"status"`
		Errors []string `json:"errors"`
	}{"unavailable", problems})
	WriteJSON(w, http.StatusServiceUnavailable, b)
}

// WriteJSON writes body as an uncached JSON answer with status code.
func WriteJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
