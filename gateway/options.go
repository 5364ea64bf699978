package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/purista-go/purista"
)

// Defaults of the options.
const (
	// DefaultMaxBodyBytes is what a Kafka broker accepts in one record by
	// default (message.max.bytes, 1 MiB) less 64 KiB for the record's
	// headers and batch framing: a body the gateway takes fits the topic,
	// and a larger one is the client's 413, not a 429 from the broker.
	DefaultMaxBodyBytes = 1<<20 - 64<<10
	DefaultTimeout      = 30 * time.Second
	DefaultMaxTimeout   = 5 * time.Minute
	DefaultReadyTimeout = 2 * time.Second
	// DefaultBodyReadTimeout bounds reading a request body: a client
	// trickling bytes holds a connection and a request slot for at most
	// this long (a 1 MiB body needs 70 KB/s).
	DefaultBodyReadTimeout = 15 * time.Second
	// DefaultMaxConcurrentRequests caps API requests in progress at once;
	// the next is answered 503 with Retry-After.
	DefaultMaxConcurrentRequests = 1024
)

// DefaultForwardHeaders are the request headers forwarded to services as
// gRPC metadata (lower-cased) unless WithForwardHeaders says otherwise.
// Idempotency-Key becomes the "idempotency-key" metadata the transports
// deduplicate retries of idempotent methods by.
var DefaultForwardHeaders = []string{"Authorization", "X-Request-Id", "Traceparent", "Tracestate", "Idempotency-Key"}

// DefaultResponseHeaders are the response metadata keys returned under their
// own name (not prefixed with Grpc-Metadata-) unless WithResponseHeaders says
// otherwise.
var DefaultResponseHeaders = []string{"X-Request-Id"}

// Option configures New.
type Option func(*config)

type config struct {
	services        []Service
	servicesSet     bool
	forwardHeaders  []string
	responseHeaders []string
	maxBody         int64
	defTimeout      time.Duration
	maxTimeout      time.Duration
	auth            Authenticator
	logger          *slog.Logger
	registry        *prometheus.Registry
	readiness       []ReadinessChecker
	readyTimeout    time.Duration
	openapi         [][]byte
	openapiTitle    string
	openapiVersion  string
	muxOptions      []runtime.ServeMuxOption
	bodyTimeout     time.Duration
	maxConcurrent   int
	tracerProvider  trace.TracerProvider // tracing.go
}

// Service is a service the gateway serves: its contract, and the function
// that registers its google.api.http routes on the gateway's grpc-gateway
// mux, calling it through conn. protoc-gen-purista generates that function
// as Register<Service>HTTP beside <Service>_PuristaService:
//
//	gateway.Service{Contract: usersv1.UsersService_PuristaService, RegisterHTTP: usersv1.RegisterUsersServiceHTTP}
//
// The pair lives here, not in the contract, so that the purista package and
// the services that import it need nothing of grpc-gateway. RegisterHTTP
// may be nil for a service without HTTP routes, whose contract still gives
// the gateway's calls their timeouts.
type Service struct {
	Contract     *purista.Service
	RegisterHTTP func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error
}

// WithServices sets the services the gateway serves, replacing those of an
// earlier WithServices. A gateway serves exactly the services it is given;
// New fails without this option (WithServices() with none serves only the
// gateway's own endpoints).
func WithServices(services ...Service) Option {
	return func(c *config) { c.services, c.servicesSet = append([]Service(nil), services...), true }
}

// WithForwardHeaders replaces the allow-list of request headers forwarded to
// services as metadata. A name ending in "*" allows every header with that
// prefix ("Echo-*"). Authorization is forwarded only when listed.
func WithForwardHeaders(names ...string) Option {
	return func(c *config) { c.forwardHeaders = canonicalList(names) }
}

// WithResponseHeaders replaces the list of response metadata keys returned
// as plain HTTP headers. Other response metadata is returned as
// "Grpc-Metadata-<key>" headers, trailer metadata as "Grpc-Trailer-<key>"
// when the client sent "TE: trailers" (grpc-gateway's conventions).
func WithResponseHeaders(keys ...string) Option {
	return func(c *config) { c.responseHeaders = canonicalList(keys) }
}

// WithMaxBodyBytes limits request bodies (default DefaultMaxBodyBytes,
// 960 KiB, which fits a Kafka broker's default record limit); a larger body,
// or one whose request message encodes larger, is answered with 413. Raise
// it together with the topics' max.message.bytes.
func WithMaxBodyBytes(n int64) Option { return func(c *config) { c.maxBody = n } }

// WithBodyReadTimeout bounds how long reading one request body may take
// (default DefaultBodyReadTimeout); a client slower than that is answered
// 408 and its connection closed. 0 removes the bound. It needs a server
// whose connections support deadlines (net/http's do).
func WithBodyReadTimeout(d time.Duration) Option { return func(c *config) { c.bodyTimeout = d } }

// WithMaxConcurrentRequests caps the API requests served at once (default
// DefaultMaxConcurrentRequests); a request over the cap is answered 503 with
// "Retry-After: 1" at once, without reading its body. The gateway's own
// endpoints (/healthz, /metrics, …) are not counted. 0 removes the cap.
func WithMaxConcurrentRequests(n int) Option { return func(c *config) { c.maxConcurrent = n } }

// WithDefaultTimeout is the deadline of calls to methods whose contract sets
// no timeout when the HTTP client sends no Grpc-Timeout header (default
// 30 s). 0 leaves such calls without a gateway deadline.
func WithDefaultTimeout(d time.Duration) Option { return func(c *config) { c.defTimeout = d } }

// WithMaxTimeout caps every call's deadline, including one asked for with a
// Grpc-Timeout header (default 5 min). 0 removes the cap.
func WithMaxTimeout(d time.Duration) Option { return func(c *config) { c.maxTimeout = d } }

// WithAuthenticator checks every request to a route not marked public.
func WithAuthenticator(a Authenticator) Option { return func(c *config) { c.auth = a } }

// WithLogger sets the logger (default slog.Default()). Requests are logged at
// Debug, server errors at Warn, panics at Error.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithRegistry registers the gateway's metrics on reg and serves reg on
// /metrics. By default the gateway has a registry of its own with the Go and
// process collectors.
func WithRegistry(reg *prometheus.Registry) Option { return func(c *config) { c.registry = reg } }

// WithReadiness adds checks to /readyz. The connection given to New is
// checked too when it implements ReadinessChecker or TopicReadinessChecker.
func WithReadiness(checks ...ReadinessChecker) Option {
	return func(c *config) { c.readiness = append(c.readiness, checks...) }
}

// WithReadyTimeout bounds one /readyz evaluation (default 2 s).
func WithReadyTimeout(d time.Duration) Option { return func(c *config) { c.readyTimeout = d } }

// WithOpenAPI gives the OpenAPI v2 (Swagger) documents of the served
// contracts, as protoc-gen-openapiv2 writes them. Several documents are
// merged; the result is served on /openapi.json and, converted to OpenAPI
// 3.0, on /openapi.v3.json.
func WithOpenAPI(v2json ...[]byte) Option {
	return func(c *config) { c.openapi = append(c.openapi, v2json...) }
}

// WithOpenAPIInfo sets the title and version of the served OpenAPI
// documents; empty values keep the documents' own (protoc-gen-openapiv2
// puts the first file's name and "version not set" there).
func WithOpenAPIInfo(title, version string) Option {
	return func(c *config) { c.openapiTitle, c.openapiVersion = title, version }
}

// WithServeMuxOptions passes options to grpc-gateway's ServeMux, e.g.
// marshalers. They are applied before the gateway's own error handlers and
// header matchers, which therefore take precedence.
func WithServeMuxOptions(opts ...runtime.ServeMuxOption) Option {
	return func(c *config) { c.muxOptions = append(c.muxOptions, opts...) }
}
