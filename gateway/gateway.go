// Package gateway is purista's HTTP edge: grpc-gateway's ServeMux with the
// routes of the contracts compiled in, calling services through any
// grpc.ClientConnInterface — the Kafka transport, the in-process one, or a
// plain gRPC connection.
//
// The route table comes from the contracts handed to New (WithServices), so
// the gateway can start before, after or while the services run: a request to
// a service that is not up yet waits on its topic until an instance takes it
// or its deadline passes (504).
//
// Besides the API routes a Gateway serves /healthz, /readyz, /metrics,
// /openapi.json, /openapi.v3.json and /routes.
package gateway

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/telemetry"
	"github.com/purista-go/purista/ops"
)

// Paths of the gateway's own endpoints. A contract route on one of them is
// refused by New.
const (
	PathHealth    = ops.PathHealth
	PathReady     = ops.PathReady
	PathMetrics   = ops.PathMetrics
	PathOpenAPIv2 = "/openapi.json"
	PathOpenAPIv3 = "/openapi.v3.json"
	PathRoutes    = "/routes"
)

// TopicNamer is implemented by a connection that knows the request topic
// it sends a service's calls to (a Kafka connection with a topic prefix, for
// example). The gateway then shows that topic in /routes and in 504 messages.
type TopicNamer interface {
	RequestTopic(service string) string
}

// Gateway is an http.Handler serving the HTTP routes of a set of services
// over a client connection. Create it with New.
type Gateway struct {
	cc       grpc.ClientConnInterface
	mux      *runtime.ServeMux
	matcher  *matcher
	routes   []*route
	byMethod map[string]*route

	auth        Authenticator
	log         *slog.Logger
	maxBody     int64
	maxTimeout  time.Duration
	bodyTimeout time.Duration
	maxActive   int64        // 0: no cap
	active      atomic.Int64 // API requests in progress
	fwdExact    map[string]bool
	fwdPrefix   []string
	fwdAuth     bool
	respHeaders map[string]string

	metrics      *metrics
	tracer       telemetry.Tracer
	unmatched    *routeMetrics
	metricsH     http.Handler
	readiness    []ReadinessChecker
	topicCheck   TopicReadinessChecker
	topics       []string
	readyTimeout time.Duration
	draining     atomic.Bool
	closed       atomic.Bool

	openapiV2, openapiV3 []byte
	routesJSON           []byte
}

// New builds the gateway for the services given WithServices, calling them
// through conn. Each service's routes are registered with its generated
// RegisterHTTP; nothing is discovered at run time. New fails without
// services, on conflicting routes, a service with HTTP bindings but no
// RegisterHTTP, and OpenAPI documents that cannot be merged.
//
// Close, or Serve at shutdown, closes conn when it has a Close method.
func New(conn grpc.ClientConnInterface, opts ...Option) (*Gateway, error) {
	if conn == nil {
		return nil, errors.New("gateway: New needs a client connection")
	}
	c := config{
		forwardHeaders:  DefaultForwardHeaders,
		responseHeaders: DefaultResponseHeaders,
		maxBody:         DefaultMaxBodyBytes,
		defTimeout:      DefaultTimeout,
		maxTimeout:      DefaultMaxTimeout,
		readyTimeout:    DefaultReadyTimeout,
		bodyTimeout:     DefaultBodyReadTimeout,
		maxConcurrent:   DefaultMaxConcurrentRequests,
	}
	for _, o := range opts {
		o(&c)
	}
	if !c.servicesSet {
		return nil, errors.New("gateway: no services: pass gateway.WithServices(gateway.Service{Contract: pb.Xxx_PuristaService, RegisterHTTP: pb.RegisterXxxHTTP}, ...)")
	}
	for _, s := range c.services {
		if s.Contract == nil {
			return nil, errors.New("gateway: a gateway.Service has no Contract: set it to the generated <Service>_PuristaService")
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	g := &Gateway{
		cc:           conn,
		auth:         c.auth,
		log:          c.logger,
		maxBody:      c.maxBody,
		maxTimeout:   c.maxTimeout,
		fwdExact:     map[string]bool{},
		respHeaders:  map[string]string{},
		byMethod:     map[string]*route{},
		readiness:    c.readiness,
		readyTimeout: c.readyTimeout,
		bodyTimeout:  c.bodyTimeout,
		maxActive:    int64(c.maxConcurrent),
		tracer:       telemetry.NewTracer(c.tracerProvider),
	}
	for _, h := range c.forwardHeaders {
		if p, ok := strings.CutSuffix(h, "*"); ok {
			g.fwdPrefix = append(g.fwdPrefix, canonicalHeader(p + "x")[:len(p)])
			continue
		}
		h = canonicalHeader(h)
		if h == "Authorization" {
			g.fwdAuth = true
		}
		g.fwdExact[h] = true
	}
	for _, h := range c.responseHeaders {
		g.respHeaders[strings.ToLower(h)] = canonicalHeader(h)
	}

	var err error
	topicOf := func(s *purista.Service) string {
		if s.RequestTopic != "" {
			return s.RequestTopic
		}
		return purista.DefaultRequestTopic(s.Name)
	}
	if tn, ok := conn.(TopicNamer); ok {
		topicOf = func(s *purista.Service) string { return tn.RequestTopic(s.Name) }
	}
	g.routes, err = buildRoutes(c.services, topicOf, c.defTimeout, c.maxTimeout)
	if err != nil {
		return nil, err
	}
	// Every method, with or without HTTP bindings, for the connection's
	// look-ups; a bound method is described by its first route.
	for _, svc := range c.services {
		s := svc.Contract
		for _, m := range s.Methods {
			timeout := m.Timeout
			if timeout <= 0 {
				timeout = c.defTimeout
			}
			if c.maxTimeout > 0 && (timeout <= 0 || timeout > c.maxTimeout) {
				timeout = c.maxTimeout
			}
			g.byMethod[m.FullMethod] = &route{Route: Route{
				Service: s.Name, Method: m.Name, FullMethod: m.FullMethod,
				Topic: topicOf(s), Timeout: timeout, Public: m.Public,
			}}
		}
	}
	topics := map[string]bool{}
	for _, r := range g.routes {
		switch r.Path {
		case PathHealth, PathReady, PathMetrics, PathOpenAPIv2, PathOpenAPIv3, PathRoutes:
			return nil, fmt.Errorf("gateway: route %s of %s uses a path the gateway serves itself", r.label, r.FullMethod)
		}
		if m, ok := g.byMethod[r.FullMethod]; !ok || m.Verb == "" {
			g.byMethod[r.FullMethod] = r
		}
		if !topics[r.Topic] {
			topics[r.Topic] = true
			g.topics = append(g.topics, r.Topic)
		}
	}
	if g.matcher, err = newMatcher(g.routes); err != nil {
		return nil, err
	}
	if rc, ok := conn.(ReadinessChecker); ok {
		g.readiness = append([]ReadinessChecker{rc}, g.readiness...)
	}
	if tc, ok := conn.(TopicReadinessChecker); ok {
		g.topicCheck = tc
	}

	var reg *prometheus.Registry
	if g.metrics, reg, err = newMetrics(c.registry); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	g.metricsH = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	g.unmatched = g.metrics.forRoute(unmatchedRoute)
	for _, r := range g.routes {
		r.obs = g.metrics.forRoute(r.label)
	}

	if len(c.openapi) > 0 {
		if g.openapiV2, g.openapiV3, err = buildOpenAPI(c.openapi, c.openapiTitle, c.openapiVersion, c.services); err != nil {
			return nil, err
		}
	}
	if g.routesJSON, err = routesJSON(g.routes); err != nil {
		return nil, err
	}

	muxOpts := []runtime.ServeMuxOption{runtime.WithMarshalerOption(runtime.MIMEWildcard, newBodyMarshaler())}
	muxOpts = append(muxOpts, c.muxOptions...)
	muxOpts = append(muxOpts,
		runtime.WithErrorHandler(g.handleError),
		runtime.WithStreamErrorHandler(g.handleStreamError),
		runtime.WithRoutingErrorHandler(g.handleRoutingError),
		runtime.WithIncomingHeaderMatcher(g.incomingHeader),
		runtime.WithOutgoingHeaderMatcher(g.outgoingHeader),
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
	)
	g.mux = runtime.NewServeMux(muxOpts...)
	wrapped := &gatewayConn{g: g, cc: conn}
	registered := map[*purista.Service]bool{}
	for _, s := range c.services {
		if s.RegisterHTTP == nil || registered[s.Contract] {
			continue
		}
		registered[s.Contract] = true
		if err := s.RegisterHTTP(context.Background(), g.mux, wrapped); err != nil {
			return nil, fmt.Errorf("gateway: registering the routes of %s: %w", s.Contract.Name, err)
		}
	}
	return g, nil
}

// Routes returns the compiled route table.
func (g *Gateway) Routes() []Route {
	out := make([]Route, len(g.routes))
	for i, r := range g.routes {
		out[i] = r.Route
	}
	return out
}

// Drain makes /readyz fail so load balancers stop sending requests, while
// requests keep being served. Serve calls it when shutting down.
func (g *Gateway) Drain() { g.draining.Store(true) }

// Close drains the gateway and closes the connection given to New if it has
// a Close method. Call it after the HTTP server stopped.
func (g *Gateway) Close() error {
	g.Drain()
	if g.closed.Swap(true) {
		return nil
	}
	if c, ok := g.cc.(io.Closer); ok {
		return c.Close()
	}
	if c, ok := g.cc.(interface{ Close() }); ok {
		c.Close()
	}
	return nil
}

// ServeHTTP serves the gateway's own endpoints and the API routes.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathHealth, PathReady, PathMetrics, PathOpenAPIv2, PathOpenAPIv3, PathRoutes:
		g.serveOwn(w, r)
		return
	}
	g.serveAPI(w, r)
}

// statusWriter remembers the status written, for metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bodyWatch notices when http.MaxBytesReader cut the body off or the body's
// read deadline passed. The deadline needs no lifting once the body is
// read: net/http clears it when it starts watching the connection.
type bodyWatch struct {
	io.ReadCloser
	st *reqState
}

func (b bodyWatch) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			b.st.bodyTooLarge = true
		case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
			b.st.bodyTimeout = true
		}
	}
	return n, err
}

func (g *Gateway) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	g.metrics.inflight.Inc()
	r, span := g.startSpan(r)
	sw := &statusWriter{ResponseWriter: w}
	st := &reqState{}
	label, obs := unmatchedRoute, g.unmatched
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler {
			g.log.Error("gateway: panic serving a request", "method", r.Method, "path", r.URL.Path, "request_id", r.Header.Get("X-Request-Id"), "panic", p)
			if sw.status == 0 {
				g.writeStatus(sw, r, 0, errorf(codes.Internal, "gateway: internal error"))
			}
		}
		d := time.Since(start)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		obs.observe(sw.status, d)
		endSpan(span, r, label, sw.status)
		if p == http.ErrAbortHandler {
			panic(p) // net/http aborts the response without logging
		}
		lvl := slog.LevelDebug
		if sw.status >= 500 {
			lvl = slog.LevelWarn
		}
		if g.log.Enabled(r.Context(), lvl) {
			attrs := []any{"method", r.Method, "path", r.URL.Path,
				"route", label, "status", sw.status, "duration", d, "request_id", r.Header.Get("X-Request-Id")}
			if st.cause != "" {
				attrs = append(attrs, "error", st.cause)
				if st.route != nil {
					attrs = append(attrs, "topic", st.route.Topic)
				}
			}
			g.log.Log(r.Context(), lvl, "gateway request", attrs...)
		}
	}()

	// Every request gets an id, forwarded to the service and returned. One
	// the client sent that cannot travel as metadata is replaced, so that
	// the 400 saying so still carries an id.
	rid := r.Header.Get("X-Request-Id")
	ridOK := validRequestID(r.Header.Values("X-Request-Id"))
	if rid == "" || !ridOK {
		rid = newRequestID()
		r.Header.Set("X-Request-Id", rid)
	}
	sw.Header().Set("X-Request-Id", rid)

	rt := g.matcher.match(r)
	if rt == nil && r.Method == http.MethodHead {
		// HEAD on a GET route is that GET without its body (RFC 9110
		// 9.3.2); net/http drops what is written for a HEAD request.
		get := r.WithContext(r.Context())
		get.Method = http.MethodGet
		if rt = g.matcher.match(get); rt != nil {
			r = get
		}
	}
	st.route = rt
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	if rt != nil {
		label, obs = rt.label, rt.obs
	}
	if g.maxActive > 0 {
		// Refused before anything is read: a full gateway spends nothing
		// more on the request, and the client learns when to come back.
		n := g.active.Add(1)
		defer g.active.Add(-1)
		if n > g.maxActive {
			sw.Header().Set("Retry-After", "1")
			g.writeOwn(sw, http.StatusServiceUnavailable, errorf(codes.Unavailable,
				"the gateway is serving its maximum of %d requests at once", g.maxActive))
			return
		}
	}
	if !ridOK {
		g.writeStatus(sw, r, 0, errorf(codes.InvalidArgument, "X-Request-Id must be one value of 1 to %d printable ASCII characters, or absent (the gateway then makes one)", maxRequestIDLen))
		return
	}
	if s := g.checkInput(r); s != nil {
		g.writeStatus(sw, r, 0, s)
		return
	}
	if rt != nil {
		if !rt.Public && g.auth != nil {
			st.req = r.WithContext(ctx)
			actx, err := g.auth.Authenticate(st.req, rt.Route)
			if err != nil {
				s, challenge := authStatus(err)
				if challenge != "" {
					sw.Header().Set("WWW-Authenticate", challenge)
				}
				if s.Code() == codes.OK || s.Code() == codes.Unknown {
					s = errorf(codes.Unauthenticated, "%s", s.Message())
				}
				g.writeStatus(sw, r, 0, s)
				return
			}
			if actx != nil {
				st.authMD, _ = metadata.FromOutgoingContext(actx)
				if stateFrom(actx) != st {
					actx = context.WithValue(actx, stateKey{}, st)
				}
				ctx = actx
			}
		}
		st.authed = true

		timeout, deadline := rt.Timeout, rt.Timeout > 0
		if h := r.Header.Get("Grpc-Timeout"); h != "" {
			d, err := decodeTimeout(h)
			if err != nil {
				g.writeStatus(sw, r, 0, errorf(codes.InvalidArgument, "invalid Grpc-Timeout header %q: %v", h, err))
				return
			}
			timeout, deadline = d, true
			if g.maxTimeout > 0 && timeout > g.maxTimeout {
				timeout = g.maxTimeout
			}
			// The gateway applies it; grpc-gateway must not apply it again.
			r.Header.Del("Grpc-Timeout")
		}
		if deadline {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
			st.timeout = timeout
		}
	}
	r = r.WithContext(ctx)
	st.req = r
	if !g.fwdAuth {
		r.Header.Del("Authorization")
	}
	if r.ContentLength > g.maxBody {
		g.writeStatus(sw, r, http.StatusRequestEntityTooLarge, errorf(codes.ResourceExhausted,
			"request body of %d bytes is larger than the gateway's limit of %d bytes", r.ContentLength, g.maxBody))
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		bw := bodyWatch{ReadCloser: http.MaxBytesReader(sw, r.Body, g.maxBody), st: st}
		if g.bodyTimeout > 0 {
			// A server without deadlines (a test recorder) is left alone.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(g.bodyTimeout))
		}
		r.Body = bw
	}
	if st.timeout > 0 {
		// A client that does not read the answer holds the handler no
		// longer than the call may take, plus time to write the answer.
		// The deadline is the connection's: lifted at the end, lest it
		// cut off the next request on a kept-alive connection.
		rc := http.NewResponseController(w)
		if rc.SetWriteDeadline(time.Now().Add(st.timeout+writeGrace)) == nil {
			defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
		}
	}
	g.mux.ServeHTTP(sw, r)
}

// writeGrace is the time a response may take to write after the call's
// deadline: an error body or the rest of a stream.
const writeGrace = 10 * time.Second

// newRequestID returns 32 random hex digits. They identify, they do not
// protect: math/rand's ChaCha8 is enough and costs no system call.
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// decodeTimeout parses a gRPC timeout: a positive integer of at most 8
// digits and a unit (H, M, S, m, u, n).
func decodeTimeout(s string) (time.Duration, error) {
	if len(s) < 2 || len(s) > 9 {
		return 0, errors.New("want 1 to 8 digits and a unit of H, M, S, m, u or n, e.g. 500m")
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want 1 to 8 digits and a unit of H, M, S, m, u or n, e.g. 500m")
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("unknown unit %q: want H, M, S, m, u or n", s[len(s)-1])
	}
	// 8 digits of hours overflow a Duration: saturate rather than wrap to
	// a deadline in the past. The gateway's maximum caps it anyway.
	if n > int64(math.MaxInt64/unit) {
		return math.MaxInt64, nil
	}
	return time.Duration(n) * unit, nil
}
