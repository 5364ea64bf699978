package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/purista-go/purista/ops"
)

// ReadinessChecker reports whether a dependency of the gateway can serve
// requests. The Kafka client connection implements it: the broker is
// reachable and the request topics exist.
type ReadinessChecker interface {
	Ready(ctx context.Context) error
}

// ReadinessFunc adapts a function to ReadinessChecker.
type ReadinessFunc func(ctx context.Context) error

// Ready calls f.
func (f ReadinessFunc) Ready(ctx context.Context) error { return f(ctx) }

// TopicReadinessChecker is implemented by a connection that can check the
// request topics the gateway calls exist. When the connection given to New
// implements it, /readyz calls it with the request topics of every route.
type TopicReadinessChecker interface {
	TopicsReady(ctx context.Context, topics []string) error
}

// ready runs every readiness check.
func (g *Gateway) ready(ctx context.Context) []string {
	var problems []string
	if g.draining.Load() {
		problems = append(problems, "gateway is shutting down")
	}
	ctx, cancel := context.WithTimeout(ctx, g.readyTimeout)
	defer cancel()
	for _, c := range g.readiness {
		if err := c.Ready(ctx); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if g.topicCheck != nil && len(g.topics) > 0 {
		if err := g.topicCheck.TopicsReady(ctx, g.topics); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

func (g *Gateway) serveOwn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		g.writeStatus(w, r, http.StatusMethodNotAllowed, errorf(codes.Unimplemented, "method %s is not allowed on %s (allowed: GET, HEAD)", r.Method, r.URL.Path))
		return
	}
	switch r.URL.Path {
	case PathHealth:
		ops.WriteJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
	case PathReady:
		ops.WriteReadiness(w, g.ready(r.Context()))
	case PathMetrics:
		g.metricsH.ServeHTTP(w, r)
	case PathRoutes:
		ops.WriteJSON(w, http.StatusOK, g.routesJSON)
	case PathOpenAPIv2, PathOpenAPIv3:
		doc := g.openapiV2
		if r.URL.Path == PathOpenAPIv3 {
			doc = g.openapiV3
		}
		if doc == nil {
			g.writeStatus(w, r, http.StatusNotFound, errorf(codes.NotFound, "no OpenAPI document configured: create the gateway with gateway.WithOpenAPI"))
			return
		}
		ops.WriteJSON(w, http.StatusOK, doc)
	}
}

// RouteInfo is one entry of /routes.
type RouteInfo struct {
	Verb       string `json:"verb"`
	Path       string `json:"path"`
	Service    string `json:"service"`
	Method     string `json:"method"`
	FullMethod string `json:"full_method"`
	Topic      string `json:"topic"`
	// Timeout is a Go duration ("3s"); empty when calls get no deadline
	// from the gateway. TimeoutMillis is the same in milliseconds.
	Timeout       string `json:"timeout"`
	TimeoutMillis int64  `json:"timeout_ms"`
	Public        bool   `json:"public"`
}

func routesJSON(routes []*route) ([]byte, error) {
	out := make([]RouteInfo, 0, len(routes))
	for _, r := range routes {
		ri := RouteInfo{
			Verb: r.Verb, Path: r.Path, Service: r.Service, Method: r.Method,
			FullMethod: r.FullMethod, Topic: r.Topic, Public: r.Public,
			TimeoutMillis: r.Timeout.Milliseconds(),
		}
		if r.Timeout > 0 {
			ri.Timeout = r.Timeout.String()
		}
		out = append(out, ri)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, errors.Join(errors.New("gateway: encoding the route table"), err)
	}
	return b, nil
}
