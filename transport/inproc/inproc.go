// Package inproc is the in-process purista transport: one value that is
// both a grpc.ClientConnInterface and a grpc.ServiceRegistrar, for running
// every service of a system in one process (monolith mode) and for tests.
//
// It keeps the semantics of the Kafka transport: messages are copied through
// their protobuf encoding, deadlines travel and are checked before a handler
// runs, a call to a service that is not registered yet waits for it until the
// call's deadline, metadata, status details and response header/trailer
// metadata round-trip, interceptors run, panics become INTERNAL, and the
// contract's idempotent methods are deduplicated by idempotency key.
//
// Like the Kafka transport it is handed the contracts of the services it
// serves and calls (WithContracts): a server refuses a service it has no
// contract for, a client a call to one.
//
// Several Servers may register the same service: they are its instances,
// and calls and events are spread over them as a consumer group spreads
// them on Kafka. Events, subscriptions, retries and dead letters follow the
// Kafka transport too, in memory (see events.go and docs/protocol.md).
package inproc

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
	"github.com/purista-go/purista/internal/eventing"
)

// Option configures a Channel.
type Option func(*options)

type options struct {
	contracts          []*purista.Service
	defaultTimeout     time.Duration
	serverInterceptors []grpc.UnaryServerInterceptor
	clientInterceptors []grpc.UnaryClientInterceptor
	logger             *slog.Logger
	dedupSize          int
	dedupTTL           time.Duration
	retry              *purista.RetryPolicy // WithRetry; nil: the default
	retryErr           error                // WithRetry's refusal
	events             eventOptions         // events.go
}

// WithContracts hands the channel's ends the contracts of the services
// they serve and call: the generated <Service>_PuristaService values. A
// server refuses to register a service without one (Err reports it), and a
// client fails a call to a service without one with FAILED_PRECONDITION,
// as the Kafka transport does: its timeouts, idempotency and events come
// from the contract. Repeated options add up.
func WithContracts(services ...*purista.Service) Option {
	return func(o *options) { o.contracts = append(o.contracts, services...) }
}

// WithDefaultTimeout sets the deadline of calls made without one whose
// contract declares no timeout (default 30 s).
func WithDefaultTimeout(d time.Duration) Option { return func(o *options) { o.defaultTimeout = d } }

// WithUnaryServerInterceptors adds interceptors around every handler, first outermost.
func WithUnaryServerInterceptors(i ...grpc.UnaryServerInterceptor) Option {
	return func(o *options) { o.serverInterceptors = append(o.serverInterceptors, i...) }
}

// WithUnaryClientInterceptors adds interceptors around every call, first outermost.
func WithUnaryClientInterceptors(i ...grpc.UnaryClientInterceptor) Option {
	return func(o *options) { o.clientInterceptors = append(o.clientInterceptors, i...) }
}

// WithLogger sets the logger for handler panics and skipped calls.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDedupWindow sets how many idempotent results are kept and for how
// long (default 10 000 for 10 minutes). size 0 disables the window.
func WithDedupWindow(size int, ttl time.Duration) Option {
	return func(o *options) { o.dedupSize, o.dedupTTL = size, ttl }
}

// WithRetry sets how a client retries a call that carries an idempotency
// key after its handler answered UNAVAILABLE, as kafka.WithRetry does: at
// most attempts tries, waiting first, then twice as long each time up to
// max, while the call's deadline leaves time (default 5 tries, 50 ms, 1 s).
// A method whose contract sets (purista.v1.method).retry is retried as the
// contract says. An invalid policy fails the client's calls with
// FAILED_PRECONDITION.
func WithRetry(attempts int, first, max time.Duration) Option {
	return func(o *options) {
		o.retry, o.retryErr = dispatch.ClientRetryPolicy("inproc.WithRetry", attempts, first, max)
	}
}

// Channel connects in-process clients to in-process servers. It is itself
// a client and a server with the options given to New; NewClient and
// NewServer make more ends with options of their own on the same channel,
// as separate processes would have on a broker.
type Channel struct {
	*Client
	*Server

	mu         sync.Mutex
	services   map[string][]*dispatch.Server // the instances of each service
	next       int
	registered chan struct{} // closed and replaced on every registration
	closed     bool
	expired    int64
	events     eventBus // events.go
}

// Client is the calling end of a Channel.
type Client struct {
	ch        *Channel
	opts      options
	contracts *dispatch.Contracts
	err       error // bad WithContracts, answered to every call
	invoke    grpc.UnaryInvoker
}

// Server is the serving end of a Channel.
type Server struct {
	ch     *Channel
	opts   options
	server *dispatch.Server

	mu     sync.Mutex
	regErr error
}

var (
	_ grpc.ClientConnInterface = (*Channel)(nil)
	_ grpc.ServiceRegistrar    = (*Channel)(nil)
	_ grpc.ClientConnInterface = (*Client)(nil)
	_ grpc.ServiceRegistrar    = (*Server)(nil)
)

func newOptions(opts []Option) options {
	o := options{defaultTimeout: 30 * time.Second, logger: slog.Default(), dedupSize: 10000, dedupTTL: 10 * time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// New returns a Channel with no services.
func New(opts ...Option) *Channel {
	c := &Channel{services: map[string][]*dispatch.Server{}, registered: make(chan struct{})}
	c.Client = c.NewClient(opts...)
	c.Server = c.NewServer(opts...)
	return c
}

// NewClient returns another calling end with its own options.
func (c *Channel) NewClient(opts ...Option) *Client {
	cl := &Client{ch: c, opts: newOptions(opts)}
	cl.contracts, cl.err = dispatch.NewContracts("inproc.WithContracts", cl.opts.contracts)
	if cl.err == nil {
		cl.err = cl.opts.retryErr
	}
	cl.invoke = dispatch.ChainUnaryClient(cl.roundTrip, cl.opts.clientInterceptors...)
	return cl
}

// NewServer returns another serving end with its own options.
func (c *Channel) NewServer(opts ...Option) *Server {
	o := newOptions(opts)
	var dd *dispatch.Dedup
	if o.dedupSize > 0 {
		dd = dispatch.NewDedup(o.dedupSize, o.dedupTTL)
	}
	s := &Server{ch: c, opts: o}
	contracts, err := dispatch.NewContracts("inproc.WithContracts", o.contracts)
	s.regErr = err
	// The event interceptor is outermost: handlers publish through their
	// context, and emit_event methods publish the response callers get.
	s.server = dispatch.NewServer(o.logger, dd, contracts, append([]grpc.UnaryServerInterceptor{eventing.Interceptor(s, contracts)}, o.serverInterceptors...)...)
	return s
}

// RegisterService registers a service implementation, as grpc.Server does.
// Registering a service another Server registered too adds an instance of
// it. A bad registration is logged and reported by Err, not a panic.
func (s *Server) RegisterService(sd *grpc.ServiceDesc, impl any) {
	err := s.Err()
	if err == nil {
		err = s.server.Register(sd, impl)
	}
	if err == nil {
		err = s.ch.publish(sd.ServiceName, s.server)
	}
	if err == nil {
		err = s.ch.events.join(s, sd.ServiceName)
	}
	if err != nil {
		s.opts.logger.Error("inproc: service not registered", "error", err)
		s.mu.Lock()
		if s.regErr == nil {
			s.regErr = err
		}
		s.mu.Unlock()
	}
}

// Err returns the first registration error, if any.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.regErr
}

// publish adds srv as an instance of the service name. Calls are spread
// over the instances, as a consumer group spreads them on Kafka.
func (c *Channel) publish(name string, srv *dispatch.Server) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.services[name] = append(c.services[name], srv)
	close(c.registered)
	c.registered = make(chan struct{})
	return nil
}

// Expired returns how many calls were not run because their deadline had
// passed before a handler took them.
func (c *Channel) Expired() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.expired
}

// Close fails pending and later calls with UNAVAILABLE.
func (c *Channel) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.registered)
	}
	c.mu.Unlock()
	c.events.close()
	return nil
}

// Invoke performs a unary call.
func (cl *Client) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if err := cl.check(method); err != nil {
		return err
	}
	ctx, cancel := cl.contracts.WithDefaultTimeout(ctx, method, cl.opts.defaultTimeout)
	defer cancel()
	return cl.invoke(ctx, method, args, reply, nil, opts...)
}

// NewStream opens a server-streaming call (see stream.go); client- and
// bidi-streaming calls are UNIMPLEMENTED, as on Kafka.
func (cl *Client) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return cl.newStream(ctx, desc, method, opts...)
}

// check refuses a call the client has no contract for.
func (cl *Client) check(method string) error {
	if cl.err != nil {
		return status.Errorf(codes.FailedPrecondition, "call %s: %v", method, cl.err)
	}
	_, err := cl.contracts.Require(method)
	return err
}

func (cl *Client) roundTrip(ctx context.Context, method string, args, reply any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
	req, out, err := dispatch.Messages(method, args, reply)
	if err != nil {
		return err
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return status.Errorf(codes.Internal, "call %s: marshal request: %v", method, err)
	}
	svc, _, ok := dispatch.SplitMethod(method)
	if !ok {
		return status.Errorf(codes.Unimplemented, "malformed method name %q: want /package.Service/Method", method)
	}
	srv, err := cl.ch.waitForService(ctx, svc)
	if err != nil {
		return err
	}
	m, err := srv.Lookup(method)
	if err != nil {
		return err
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	key := dispatch.CallKey(opts, md, m.Contract)
	if key != "" {
		// The server sees the key the client made for an idempotent
		// method as it sees a caller's.
		md = md.Copy()
		md.Set(dispatch.IdempotencyMetadataKey, key)
	}
	var res dispatch.Result
	err = dispatch.RetryKeyed(ctx, key != "", dispatch.RetryPolicy(m.Contract, cl.opts.retry), nil, func() error {
		if err := ctx.Err(); err != nil {
			cl.ch.countExpired()
			return status.FromContextError(err).Err()
		}
		sctx := metadata.NewIncomingContext(dispatch.HandlerContext(ctx), md.Copy())
		res = srv.Call(sctx, m, key, dispatch.Decode(body))
		return res.Err
	}, nil)
	dispatch.ParseCallOptions(opts).Deliver(res.Header.Copy(), res.Trailer.Copy())
	if err != nil {
		return err
	}
	respMsg, ok := res.Response.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "call %s: response %T is not a protobuf message", method, res.Response)
	}
	b, err := proto.Marshal(respMsg)
	if err != nil {
		return status.Errorf(codes.Internal, "call %s: marshal response: %v", method, err)
	}
	if err := proto.Unmarshal(b, out); err != nil {
		return status.Errorf(codes.Internal, "call %s: response does not decode as %T: %v", method, out, err)
	}
	return nil
}

func (c *Channel) countExpired() {
	c.mu.Lock()
	c.expired++
	c.mu.Unlock()
}

// waitForService blocks until svc is registered, the channel closes, or ctx
// ends: a caller may start before the service it calls.
func (c *Channel) waitForService(ctx context.Context, svc string) (*dispatch.Server, error) {
	for {
		c.mu.Lock()
		closed, ch, srvs := c.closed, c.registered, c.services[svc]
		var srv *dispatch.Server
		if len(srvs) > 0 {
			c.next++
			srv = srvs[c.next%len(srvs)]
		}
		c.mu.Unlock()
		if closed {
			return nil, status.Error(codes.Unavailable, "in-process channel is closed")
		}
		if srv != nil {
			return srv, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.countExpired()
			st := status.FromContextError(ctx.Err())
			return nil, status.Errorf(st.Code(), "no server for %s took the call before it ended: %v", svc, ctx.Err())
		}
	}
}
