// Package system assembles the example system — the users, orders and
// notifications services and the HTTP gateway in front of them — in each of
// the three deployment styles, with the same service implementations:
//
//   - microservices over Kafka: [ServeService] runs one service on a
//     kafka.Server and [ServeGateway] the gateway on a kafka.ClientConn, each
//     in its own process (the mains under examples/services and
//     examples/gateway, which `purista dev` starts from
//     examples/purista.yaml, one process per component);
//   - monolith: [ServeMonolith] runs every service and the gateway in one
//     process on transport/inproc (examples/monolith, `make demo MONOLITH=1`);
//   - plain gRPC: the same implementations on a *grpc.Server, since every
//     service is an ordinary gRPC server implementation (TestDemoGRPC).
//
// Every transport and the gateway are handed the contracts they serve and
// call (kafka.WithContracts, inproc.WithContracts, gateway.WithServices):
// the generated <Service>_PuristaService values of examples/contracts.
//
// The services find each other through the connection they are given: the
// orders service calls users through a grpc.ClientConnInterface, whichever
// transport it is, and publishes OrderPlaced through the transport serving
// it, to which the notifications service subscribes.
package system

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/examples/contracts"
	notificationsv1 "github.com/purista-go/purista/examples/contracts/gen/notifications/v1"
	ordersv1 "github.com/purista-go/purista/examples/contracts/gen/orders/v1"
	usersv1 "github.com/purista-go/purista/examples/contracts/gen/users/v1"
	"github.com/purista-go/purista/examples/services/notifications/notificationsvc"
	"github.com/purista-go/purista/examples/services/orders/ordersvc"
	"github.com/purista-go/purista/examples/services/users/usersvc"
	"github.com/purista-go/purista/gateway"
	"github.com/purista-go/purista/ops"
	"github.com/purista-go/purista/transport/inproc"
	"github.com/purista-go/purista/transport/kafka"
)

// Component names, as examples/purista.yaml and `purista dev`'s logs use them.
const (
	Gateway       = "gateway"
	Users         = "users"
	Orders        = "orders"
	Notifications = "notifications"
)

// Services lists the service components in the order examples/purista.yaml starts them.
var Services = []string{Users, Orders, Notifications}

// Register registers the implementation of service component name on srv,
// a purista transport (its handlers publish events through it). conn is
// how the service reaches the services it calls (only orders calls
// others); it may be nil for the others.
func Register(name string, srv grpc.ServiceRegistrar, conn grpc.ClientConnInterface, logger *slog.Logger) error {
	switch name {
	case Users:
		usersv1.RegisterUsersServiceServer(srv, usersvc.New(logger))
	case Orders:
		if conn == nil {
			return errors.New("system: the orders service needs a connection to the users service")
		}
		ordersv1.RegisterOrdersServiceServer(srv, ordersvc.New(conn, logger))
	case Notifications:
		notificationsv1.RegisterNotificationsServiceServer(srv, notificationsvc.New(logger))
	default:
		return fmt.Errorf("system: no service %q: the services are %s", name, strings.Join(Services, ", "))
	}
	return nil
}

// RegisterAll registers every service on srv — an inproc channel, a
// kafka.Server — with conn as the orders service's way to the users
// service.
func RegisterAll(srv grpc.ServiceRegistrar, conn grpc.ClientConnInterface, logger *slog.Logger) {
	for _, name := range Services {
		_ = Register(name, srv, conn, logger.With("component", name))
	}
}

// contract returns the contract of a service component.
func contract(name string) *purista.Service {
	switch name {
	case Users:
		return usersv1.UsersService_PuristaService
	case Orders:
		return ordersv1.OrdersService_PuristaService
	case Notifications:
		return notificationsv1.NotificationsService_PuristaService
	}
	return nil
}

// gatewayServices pairs every contract with its generated HTTP
// registration, for gateway.WithServices.
func gatewayServices() []gateway.Service {
	return []gateway.Service{
		{Contract: usersv1.UsersService_PuristaService, RegisterHTTP: usersv1.RegisterUsersServiceHTTP},
		{Contract: ordersv1.OrdersService_PuristaService, RegisterHTTP: ordersv1.RegisterOrdersServiceHTTP},
		{Contract: notificationsv1.NotificationsService_PuristaService, RegisterHTTP: notificationsv1.RegisterNotificationsServiceHTTP},
	}
}

// callsOthers reports whether a service component calls other services and
// so needs a client connection of its own.
func callsOthers(name string) bool { return name == Orders }

// Kafka configures the components that run over Kafka.
type Kafka struct {
	// Brokers are the bootstrap brokers.
	Brokers []string
	// Options are passed to every kafka.Dial and kafka.NewServer: TLS,
	// SASL, WithTopicPrefix, WithEnsureTopics, ...
	Options []kafka.Option
}

// ServiceOption configures ServeService.
type ServiceOption func(*serviceConfig)

type serviceConfig struct {
	ops net.Listener
}

// WithOps serves the operational endpoints of package ops on ln while the
// service runs: /healthz, /readyz (the Kafka server is serving and its
// request topics exist) and /metrics (the transport's counters, Go and
// process metrics).
func WithOps(ln net.Listener) ServiceOption { return func(c *serviceConfig) { c.ops = ln } }

// ServeService runs one service component over Kafka until ctx ends, then
// stops gracefully: no new requests, the ones in progress are answered and
// committed, and the instance leaves its consumer group.
func ServeService(ctx context.Context, name string, k Kafka, logger *slog.Logger, opts ...ServiceOption) error {
	var sc serviceConfig
	for _, o := range opts {
		o(&sc)
	}
	if sc.ops != nil {
		defer sc.ops.Close()
	}
	if !slices.Contains(Services, name) {
		return fmt.Errorf("system: no service %q: the services are %s", name, strings.Join(Services, ", "))
	}
	// The server serves one contract; the client may call every service.
	sopts := []kafka.ServerOption{kafka.WithLogger(logger), kafka.WithContracts(contract(name))}
	copts := []kafka.ClientOption{kafka.WithLogger(logger), kafka.WithContracts(contracts.Services()...)}
	for _, o := range k.Options {
		sopts, copts = append(sopts, o), append(copts, o)
	}
	var reg *prometheus.Registry
	if sc.ops != nil {
		// Latency, waiting time, results and lag per method on /metrics.
		reg = newRegistry()
		sopts, copts = append(sopts, kafka.WithMetrics(reg)), append(copts, kafka.WithMetrics(reg))
	}
	srv, err := kafka.NewServer(k.Brokers, sopts...)
	if err != nil {
		return err
	}
	var conn grpc.ClientConnInterface
	if callsOthers(name) {
		c, err := kafka.Dial(ctx, k.Brokers, copts...)
		if err != nil {
			return err
		}
		defer c.Close()
		conn = c
	}
	if err := Register(name, srv, conn, logger); err != nil {
		return err
	}
	if sc.ops != nil {
		clients := map[string]*kafka.ClientConn{}
		if c, ok := conn.(*kafka.ClientConn); ok {
			clients[name] = c
		}
		reg.MustRegister(kafka.NewCollector(map[string]*kafka.Server{name: srv}, clients))
		hs := &http.Server{Handler: ops.Handler(reg, srv), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = hs.Serve(sc.ops) }()
		defer hs.Close()
		logger.Info("operational endpoints listening", "url", "http://"+sc.ops.Addr().String(), "paths", ops.PathHealth+" "+ops.PathReady+" "+ops.PathMetrics)
	}
	return srv.Serve(ctx) // graceful stop when ctx ends
}

// newRegistry returns a Prometheus registry with the Go and process
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// GatewayConfig configures the HTTP gateway.
type GatewayConfig struct {
	// Token, when set, is the bearer token every route not marked public
	// in the contracts requires (Authorization: Bearer <token>).
	Token string
	// Options are added to the gateway's own.
	Options []gateway.Option
}

// NewGateway returns the gateway for every route of the example contracts,
// calling the services through conn. Requests are logged at Info.
func NewGateway(conn grpc.ClientConnInterface, cfg GatewayConfig, logger *slog.Logger) (*LoggingGateway, error) {
	opts := []gateway.Option{
		gateway.WithServices(gatewayServices()...),
		gateway.WithOpenAPI(contracts.OpenAPI),
		gateway.WithOpenAPIInfo("purista example system", "v1"),
		gateway.WithLogger(logger),
	}
	if cfg.Token != "" {
		opts = append(opts, gateway.WithAuthenticator(gateway.BearerAuth("purista-example",
			func(ctx context.Context, token string, _ gateway.Route) (context.Context, error) {
				if token != cfg.Token {
					return nil, errors.New("unknown token")
				}
				return ctx, nil
			})))
	}
	g, err := gateway.New(conn, append(opts, cfg.Options...)...)
	if err != nil {
		return nil, err
	}
	return &LoggingGateway{Gateway: g, log: logger}, nil
}

// ServeGateway runs the gateway over Kafka on ln until ctx ends, then shuts
// it down gracefully (drain, finish in-flight requests, close the
// connection).
func ServeGateway(ctx context.Context, ln net.Listener, k Kafka, cfg GatewayConfig, logger *slog.Logger) error {
	copts := []kafka.ClientOption{kafka.WithLogger(logger), kafka.WithContracts(contracts.Services()...)}
	for _, o := range k.Options {
		copts = append(copts, o)
	}
	// The gateway's /metrics also shows its Kafka client's series.
	reg := newRegistry()
	conn, err := kafka.Dial(ctx, k.Brokers, append(copts, kafka.WithMetrics(reg))...)
	if err != nil {
		_ = ln.Close()
		return err
	}
	reg.MustRegister(kafka.NewCollector(nil, map[string]*kafka.ClientConn{Gateway: conn}))
	cfg.Options = append([]gateway.Option{gateway.WithRegistry(reg)}, cfg.Options...)
	g, err := NewGateway(conn, cfg, logger)
	if err != nil {
		_ = conn.Close()
		_ = ln.Close()
		return err
	}
	logger.Info("gateway listening", "url", "http://"+ln.Addr().String(), "routes", len(g.Routes()), "brokers", strings.Join(k.Brokers, ","))
	return gateway.Serve(ctx, ln, g, gateway.WithShutdownTimeout(10*time.Second))
}

// ServeMonolith runs every service and the gateway in this process on the
// in-process transport until ctx ends. ready, if not nil, is called once
// the gateway accepts requests.
func ServeMonolith(ctx context.Context, ln net.Listener, cfg GatewayConfig, logger func(component string) *slog.Logger, ready func()) error {
	ch := inproc.New(inproc.WithLogger(logger("inproc")), inproc.WithContracts(contracts.Services()...))
	for _, name := range Services {
		if err := Register(name, ch, ch, logger(name)); err != nil {
			_ = ln.Close()
			return err
		}
	}
	if err := ch.Err(); err != nil {
		_ = ln.Close()
		return err
	}
	g, err := NewGateway(ch, cfg, logger(Gateway))
	if err != nil {
		_ = ln.Close()
		return err
	}
	logger(Gateway).Info("gateway listening", "url", "http://"+ln.Addr().String(), "routes", len(g.Routes()), "transport", "inproc")
	return gateway.Serve(ctx, ln, g, gateway.WithShutdownTimeout(10*time.Second), gateway.WithOnListen(func(net.Addr) {
		if ready != nil {
			ready()
		}
	}))
}

// LoggingGateway is the gateway with one Info log line per API request.
type LoggingGateway struct {
	*gateway.Gateway
	log *slog.Logger
}

// ServeHTTP serves the request and logs it (the gateway's own endpoints,
// such as /healthz and /metrics, are not logged).
func (g *LoggingGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case gateway.PathHealth, gateway.PathReady, gateway.PathMetrics:
		g.Gateway.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	g.Gateway.ServeHTTP(rec, r)
	g.log.Info(fmt.Sprintf("%s %s → %d", r.Method, r.URL.RequestURI(), rec.status),
		"took", time.Since(start).Round(10*time.Microsecond), "request_id", w.Header().Get("X-Request-Id"))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
