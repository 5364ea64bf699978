package gateway

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/contract"
)

// Route is one compiled HTTP route: a google.api.http binding of a method.
// The table is built from the contracts when the gateway is created and never
// changes while it runs.
type Route struct {
	// Verb is the HTTP method ("GET", "POST", ...) or a custom verb.
	Verb string
	// Path is the path template from the contract, e.g. "/v1/users/{id}".
	Path string
	// Service is the service's full protobuf name.
	Service string
	// Method is the RPC's short name; FullMethod is "/Service/Method".
	Method     string
	FullMethod string
	// Topic is the service's request topic.
	Topic string
	// Timeout is the deadline the gateway gives a call whose HTTP client sent
	// no Grpc-Timeout header: the method's timeout from the contract, else
	// the gateway default, capped by the gateway maximum. 0 means none.
	Timeout time.Duration
	// Public routes are served without calling the Authenticator.
	Public bool
}

// String returns "VERB /path", the form used in logs and metric labels.
func (r Route) String() string { return r.Verb + " " + r.Path }

// route is a Route with what the request path needs precomputed.
type route struct {
	Route
	label string
	obs   *routeMetrics
}

// buildRoutes compiles the route table of services. It fails on a service
// that declares HTTP bindings without a RegisterHTTP function and on two
// bindings of the same verb and path template, which grpc-gateway would
// otherwise resolve silently in favour of the later one.
func buildRoutes(services []Service, topicOf func(*purista.Service) string, defTimeout, maxTimeout time.Duration) ([]*route, error) {
	var out []*route
	seen := map[string]*route{}
	for _, svc := range services {
		s := svc.Contract
		topic := topicOf(s)
		for _, m := range s.Methods {
			if len(m.HTTP) == 0 {
				continue
			}
			if svc.RegisterHTTP == nil {
				return nil, fmt.Errorf("gateway: service %s declares HTTP bindings for %s but has no RegisterHTTP: run protoc-gen-grpc-gateway and protoc-gen-purista on its contract", s.Name, m.Name)
			}
			timeout := m.Timeout
			if timeout <= 0 {
				timeout = defTimeout
			}
			if maxTimeout > 0 && (timeout <= 0 || timeout > maxTimeout) {
				timeout = maxTimeout
			}
			for _, h := range m.HTTP {
				r := &route{Route: Route{
					Verb:       h.Method,
					Path:       h.Pattern,
					Service:    s.Name,
					Method:     m.Name,
					FullMethod: m.FullMethod,
					Topic:      topic,
					Timeout:    timeout,
					Public:     m.Public,
				}}
				r.label = r.Route.String()
				key, err := contract.RouteKey(r.Verb, r.Path)
				if err != nil {
					return nil, fmt.Errorf("gateway: route of %s: %w", r.FullMethod, err)
				}
				if old, ok := seen[key]; ok {
					return nil, fmt.Errorf("gateway: route %s of %s conflicts with %s of %s: give one of them another path", r.label, r.FullMethod, old.label, old.FullMethod)
				}
				seen[key] = r
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// reqState travels in the request context from the gateway's handler
// through grpc-gateway's generated code to the connection wrapper and the
// error handler. It is only touched by the goroutine serving the request.
type reqState struct {
	route        *route
	req          *http.Request
	authed       bool
	authMD       metadata.MD
	bodyTooLarge bool
	bodyTimeout  bool
	timeout      time.Duration
	// cause is the internal message behind a public 5xx body, for the
	// request's log line; explained says the body's message is the
	// gateway's own and already public.
	cause     string
	explained bool
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// matcher finds the route of a request with grpc-gateway's own pattern
// matching, before the request reaches the mux, so that authentication,
// timeouts and metrics know the route before the body is read.
type matcher struct {
	mux   *runtime.ServeMux
	verbs []string
}

func newMatcher(routes []*route) (*matcher, error) {
	m := &matcher{mux: runtime.NewServeMux(
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithRoutingErrorHandler(func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, int) {}),
		runtime.WithErrorHandler(func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, error) {
		}),
	)}
	verbs := map[string]bool{}
	for _, r := range routes {
		r := r
		err := m.mux.HandlePath(r.Verb, r.Path, func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
			if mw, ok := w.(*matchWriter); ok {
				mw.route = r
			}
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: route %s of %s: %w", r.label, r.FullMethod, err)
		}
		verbs[r.Verb] = true
	}
	for v := range verbs {
		m.verbs = append(m.verbs, v)
	}
	sort.Strings(m.verbs)
	return m, nil
}

// match returns the route of r, or nil.
func (m *matcher) match(r *http.Request) *route {
	w := matchWriter{}
	m.mux.ServeHTTP(&w, r)
	return w.route
}

// allowed lists the verbs that have a route for r's path.
func (m *matcher) allowed(r *http.Request) []string {
	var out []string
	for _, v := range m.verbs {
		r2 := r.Clone(r.Context())
		r2.Method = v
		r2.Body = http.NoBody
		if m.match(r2) != nil {
			out = append(out, v)
			if v == http.MethodGet {
				out = append(out, http.MethodHead) // served as GET
			}
		}
	}
	sort.Strings(out)
	return out
}

// matchWriter receives the route the matcher's mux found; nothing is written.
type matchWriter struct{ route *route }

func (*matchWriter) Header() http.Header         { return http.Header{} }
func (*matchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (*matchWriter) WriteHeader(int)             {}

// canonicalList upper-cases nothing and trims blanks; used for header lists.
func canonicalList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
