// Package plaingrpc gives a plain grpc.Server and grpc.ClientConn the
// semantics of purista's broker transports, so that the same service
// behaves the same over Kafka, in process and over direct gRPC connections:
//
//   - a handler panic is INTERNAL, logged, and the server lives on;
//   - a request whose deadline passed before its handler ran is not run;
//   - a request that breaks its contract's protovalidate rules is refused
//     with INVALID_ARGUMENT and a google.rpc.BadRequest detail;
//   - idempotent methods are answered from a dedup window by idempotency key;
//   - a call without a deadline gets its contract's timeout;
//   - a call made before the server listens waits for it within its
//     deadline (wait-for-ready), as a request waits in a topic;
//   - handlers get a publisher (purista.PublisherFromContext), and
//     emit_event methods publish their response, when WithPublisher is set.
//
// Like the other transports it is handed the contracts of the services it
// serves and calls (WithContracts). Use it as options of grpc-go itself:
//
//	sopts, err := plaingrpc.ServerOptions(plaingrpc.WithContracts(usersv1.UsersService_PuristaService))
//	srv := grpc.NewServer(sopts...)
//	usersv1.RegisterUsersServiceServer(srv, impl)
//
//	dopts, err := plaingrpc.DialOptions(plaingrpc.WithContracts(usersv1.UsersService_PuristaService))
//	conn, err := grpc.NewClient(addr, append(dopts, grpc.WithTransportCredentials(creds))...)
//
// Interceptors added with grpc.ChainUnaryInterceptor after these options run
// inside purista's, as the interceptors of the other transports do.
// Subscriptions need a broker and are not served over plain gRPC.
package plaingrpc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
	"github.com/purista-go/purista/internal/eventing"
)

// Option configures ServerOptions and DialOptions.
type Option func(*config)

type config struct {
	contracts      []*purista.Service
	defaultTimeout time.Duration
	dedupSize      int
	dedupTTL       time.Duration
	publisher      purista.Publisher
	logger         *slog.Logger
}

// WithContracts hands the server or client the contracts of the services
// it serves or calls: the generated <Service>_PuristaService values.
// Repeated options add up.
func WithContracts(services ...*purista.Service) Option {
	return func(c *config) { c.contracts = append(c.contracts, services...) }
}

// WithDefaultTimeout sets the deadline of calls made without one whose
// contract declares no timeout (default 30 s, as the other transports).
func WithDefaultTimeout(d time.Duration) Option { return func(c *config) { c.defaultTimeout = d } }

// WithDedupWindow sets how many results of idempotent methods a server
// keeps and for how long (default 10 000 for 10 minutes); size 0 disables
// the window. A replayed answer carries the response and status, not the
// header and trailer metadata the handler set.
func WithDedupWindow(size int, ttl time.Duration) Option {
	return func(c *config) { c.dedupSize, c.dedupTTL = size, ttl }
}

// WithPublisher sets the publisher the server's handlers get and emit_event
// methods publish their response through: a Kafka client, an in-process
// channel. Without it a server refuses contracts that emit events.
func WithPublisher(p purista.Publisher) Option { return func(c *config) { c.publisher = p } }

// WithLogger sets the logger for handler panics (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

func newConfig(opts []Option) (config, *dispatch.Contracts, error) {
	c := config{defaultTimeout: 30 * time.Second, dedupSize: 10000, dedupTTL: 10 * time.Minute, logger: slog.Default()}
	for _, o := range opts {
		o(&c)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.defaultTimeout < 0 {
		return c, nil, fmt.Errorf("plaingrpc: default timeout %v is negative: set a positive duration, or 0 for none", c.defaultTimeout)
	}
	contracts, err := dispatch.NewContracts("plaingrpc.WithContracts", c.contracts)
	if err != nil {
		return c, nil, fmt.Errorf("plaingrpc: %w", err)
	}
	return c, contracts, nil
}

// ServerOptions returns the options that give a grpc.Server purista's
// semantics for the services of its contracts.
func ServerOptions(opts ...Option) ([]grpc.ServerOption, error) {
	c, contracts, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if c.publisher == nil {
		for _, s := range contracts.Services() {
			for _, m := range s.Methods {
				if m.Event != nil {
					return nil, fmt.Errorf("plaingrpc: method %s publishes its response as %s, and gRPC carries no events: pass plaingrpc.WithPublisher (a Kafka client or an in-process channel)", m.FullMethod, m.Event.Name)
				}
			}
		}
	}
	var dedup *dispatch.Dedup
	if c.dedupSize > 0 {
		dedup = dispatch.NewDedup(c.dedupSize, c.dedupTTL)
	}
	s := &server{cfg: c, contracts: contracts, dedup: dedup}
	if c.publisher != nil {
		s.events = eventing.Interceptor(c.publisher, contracts)
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unary),
		grpc.ChainStreamInterceptor(s.stream),
	}, nil
}

type server struct {
	cfg       config
	contracts *dispatch.Contracts
	dedup     *dispatch.Dedup
	events    grpc.UnaryServerInterceptor // nil without a publisher
}

func (s *server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := ctx.Err(); err != nil {
		// The deadline passed while the request waited: do not run it.
		return nil, status.FromContextError(err).Err()
	}
	// The contract's protovalidate rules, checked before any handler or
	// interceptor runs, as on the other transports.
	if err := dispatch.Validate(req); err != nil {
		return nil, err
	}
	run := func() (res dispatch.Result) {
		defer func() {
			if r := recover(); r != nil {
				res = dispatch.Result{Err: dispatch.Panicked(ctx, s.cfg.logger, info.FullMethod, r)}
			}
		}()
		var resp any
		var err error
		if s.events != nil {
			resp, err = s.events(ctx, req, info, handler)
		} else {
			resp, err = handler(ctx, req)
		}
		return dispatch.Result{Response: resp, Err: dispatch.ToStatusError(err)}
	}
	var res dispatch.Result
	md, _ := metadata.FromIncomingContext(ctx)
	if key := dispatch.IdempotencyKey(md); s.dedup != nil && key != "" {
		res = s.dedup.Do(info.FullMethod+"\x00"+key, run)
	} else {
		res = run()
	}
	return res.Response, res.Err
}

func (s *server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = dispatch.Panicked(ss.Context(), s.cfg.logger, info.FullMethod, r)
		}
	}()
	ctx := ss.Context()
	if s.cfg.publisher != nil {
		ctx = purista.ContextWithPublisher(ctx, s.cfg.publisher)
	}
	return handler(srv, validatingStream{ServerStream: ss, ctx: ctx})
}

// validatingStream gives a streaming handler its context (with the
// publisher) and checks every message it receives against the contract's
// protovalidate rules, as the other transports do.
type validatingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (p validatingStream) Context() context.Context { return p.ctx }

func (p validatingStream) RecvMsg(m any) error {
	if err := p.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return dispatch.Validate(m)
}

// DialOptions returns the options that give a grpc.ClientConn purista's
// semantics for calls to the services of its contracts. A call to a service
// without a contract fails with FAILED_PRECONDITION, as on the other
// transports.
func DialOptions(opts ...Option) ([]grpc.DialOption, error) {
	c, contracts, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, err := contracts.Require(method); err != nil {
			return err
		}
		ctx, cancel := contracts.WithDefaultTimeout(ctx, method, c.defaultTimeout)
		defer cancel()
		// Keyed calls are retried after UNAVAILABLE as on the other
		// transports, with the key in metadata for the server's window.
		_, m, _ := contracts.Method(method)
		md, _ := metadata.FromOutgoingContext(ctx)
		key := dispatch.CallKey(opts, md, m)
		if key != "" && dispatch.IdempotencyKey(md) != key {
			md = md.Copy()
			md.Set(dispatch.IdempotencyMetadataKey, key)
			ctx = metadata.NewOutgoingContext(ctx, md)
		}
		return dispatch.RetryKeyed(ctx, key != "", dispatch.RetryPolicy(m, nil), nil, func() error {
			return invoker(ctx, method, req, reply, cc, opts...)
		}, nil)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if _, err := contracts.Require(method); err != nil {
			return nil, err
		}
		ctx, cancel := contracts.WithDefaultTimeout(ctx, method, c.defaultTimeout)
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			cancel()
			return nil, err
		}
		// The stream outlives this function: its timer is released when
		// the stream ends.
		return &timedStream{ClientStream: cs, cancel: cancel}, nil
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(unary),
		grpc.WithChainStreamInterceptor(stream),
		// A call made while the server is not up waits for it within its
		// deadline, as a request waits in its topic for an instance.
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
	}, nil
}

// timedStream releases the timer of a stream's default deadline when the
// stream ends.
type timedStream struct {
	grpc.ClientStream
	cancel context.CancelFunc
}

func (s *timedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.cancel()
	}
	return err
}
