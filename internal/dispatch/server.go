// Package dispatch holds the request machinery every purista transport
// shares: the registry of served gRPC services, the unary interceptor
// chain, panic recovery, response header/trailer collection, the dedup
// window for idempotent methods, and the client-side handling of call
// options and default timeouts. Transports only move bytes.
package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
)

// Server is the registry of the services a transport serves and the
// machinery to run their unary methods.
type Server struct {
	interceptor grpc.UnaryServerInterceptor
	logger      *slog.Logger
	dedup       *Dedup
	contracts   *Contracts

	mu       sync.RWMutex
	services map[string]*service
}

type service struct {
	desc    *grpc.ServiceDesc
	impl    any
	methods map[string]*grpc.MethodDesc
	streams map[string]*grpc.StreamDesc
}

// Method is a method a Server can run.
type Method struct {
	FullMethod string
	Service    string
	Name       string
	// Contract is the method's purista description; nil only for a method
	// the service's ServiceDesc has and its contract lacks (generated from
	// another version of the .proto file).
	Contract *purista.Method

	svc  *service
	desc *grpc.MethodDesc
}

// NewServer returns an empty Server for services whose contracts are
// among contracts. interceptors run in order around every handler, once the
// request decoded and passed its contract's rules (Validate); dedup may be
// nil to disable the dedup window.
func NewServer(logger *slog.Logger, dedup *Dedup, contracts *Contracts, interceptors ...grpc.UnaryServerInterceptor) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{
		interceptor: ChainUnaryServer(interceptors...),
		logger:      logger,
		dedup:       dedup,
		contracts:   contracts,
		services:    map[string]*service{},
	}
}

// Register adds a service, as grpc.ServiceRegistrar does. It reports an
// error instead of panicking when impl does not implement the service, the
// service is registered twice, or the server has no contract for it.
func (s *Server) Register(sd *grpc.ServiceDesc, impl any) error {
	if sd == nil {
		return fmt.Errorf("register service: the service description is nil")
	}
	if _, ok := s.contracts.Service(sd.ServiceName); !ok {
		return s.contracts.missing(sd.ServiceName)
	}
	if impl == nil {
		return fmt.Errorf("register service %s: the implementation is nil", sd.ServiceName)
	}
	if sd.HandlerType != nil {
		ht := reflect.TypeOf(sd.HandlerType).Elem()
		if st := reflect.TypeOf(impl); !st.Implements(ht) {
			return fmt.Errorf("register service %s: %v does not implement %v", sd.ServiceName, st, ht)
		}
	}
	svc := &service{desc: sd, impl: impl, methods: map[string]*grpc.MethodDesc{}, streams: map[string]*grpc.StreamDesc{}}
	for i := range sd.Methods {
		svc.methods[sd.Methods[i].MethodName] = &sd.Methods[i]
	}
	for i := range sd.Streams {
		svc.streams[sd.Streams[i].StreamName] = &sd.Streams[i]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.services[sd.ServiceName]; ok {
		return fmt.Errorf("register service %s: already registered on this server; register each service once", sd.ServiceName)
	}
	s.services[sd.ServiceName] = svc
	return nil
}

// ServiceNames returns the names of the registered services, sorted.
func (s *Server) ServiceNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.services))
	for n := range s.services {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Contracts returns the contracts the server was made with.
func (s *Server) Contracts() *Contracts { return s.contracts }

// HasService reports whether a service is registered.
func (s *Server) HasService(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.services[name]
	return ok
}

// Lookup finds a unary method. The error is a gRPC status error suitable
// for the caller.
func (s *Server) Lookup(fullMethod string) (Method, error) {
	svc, svcName, name, err := s.service(fullMethod)
	if err != nil {
		return Method{}, err
	}
	md, ok := svc.methods[name]
	if !ok {
		if _, streaming := svc.streams[name]; streaming {
			return Method{}, status.Errorf(codes.Unimplemented, "method %s is streaming: open it as a stream (NewStream), not with Invoke", fullMethod)
		}
		return Method{}, status.Errorf(codes.Unimplemented, "unknown method %s for service %s", name, svcName)
	}
	_, contract, _ := s.contracts.Method(fullMethod)
	return Method{FullMethod: fullMethod, Service: svcName, Name: name, Contract: contract, svc: svc, desc: md}, nil
}

// service finds the registered service of a full method name, and splits
// the name. The error is UNIMPLEMENTED, for the caller.
func (s *Server) service(fullMethod string) (svc *service, svcName, name string, err error) {
	svcName, name, ok := SplitMethod(fullMethod)
	if !ok {
		return nil, "", "", status.Errorf(codes.Unimplemented, "malformed method name %q: want /package.Service/Method", fullMethod)
	}
	s.mu.RLock()
	svc, ok = s.services[svcName]
	s.mu.RUnlock()
	if !ok {
		return nil, "", "", status.Errorf(codes.Unimplemented, "unknown service %s: this server does not serve it", svcName)
	}
	return svc, svcName, name, nil
}

// SplitMethod splits "/pkg.Service/Method" into its service and method names.
func SplitMethod(fullMethod string) (service, method string, ok bool) {
	if !strings.HasPrefix(fullMethod, "/") {
		return "", "", false
	}
	i := strings.LastIndex(fullMethod, "/")
	if i <= 1 || i == len(fullMethod)-1 {
		return "", "", false
	}
	return fullMethod[1:i], fullMethod[i+1:], true
}

// Result is the outcome of a unary call as the server produced it.
type Result struct {
	Response any
	Header   metadata.MD
	Trailer  metadata.MD
	// Err is nil or an error convertible with status.Convert.
	Err error
	// Refused is set when the handler never ran: the request did not
	// decode or broke its contract's rules.
	Refused bool
}

// Final reports whether r may answer the same idempotency key again: the
// handler ran and its outcome was not transient. A refused request is not
// remembered, so that the caller may correct it and send it again with the
// same key.
func (r Result) Final() bool { return !r.Refused && !Transient(status.Code(r.Err)) }

// Call runs m with the request decoded by dec. ctx must already carry the
// call's deadline and incoming metadata. When idempotencyKey is set, a
// repeated key is answered from the dedup window without running the
// handler again, whatever the method: the caller named the operation.
func (s *Server) Call(ctx context.Context, m Method, idempotencyKey string, dec func(any) error) Result {
	if s.dedup != nil && idempotencyKey != "" {
		return s.dedup.Do(m.FullMethod+"\x00"+idempotencyKey, func() Result { return s.call(ctx, m, dec) })
	}
	return s.call(ctx, m, dec)
}

func (s *Server) call(ctx context.Context, m Method, dec func(any) error) (res Result) {
	stream := &serverStream{method: m.FullMethod}
	ctx = grpc.NewContextWithServerTransportStream(ctx, stream)
	defer func() {
		if r := recover(); r != nil {
			res = Result{Err: Panicked(ctx, s.logger, m.FullMethod, r)}
		}
		res.Header, res.Trailer = stream.result()
	}()
	decErr := error(nil)
	// The generated handler decodes before any interceptor runs: a request
	// that does not decode, or breaks its contract's rules, reaches none.
	decode := func(v any) error {
		if err := dec(v); err != nil {
			decErr = status.Errorf(codes.InvalidArgument, "request for %s does not decode as %T: %v", m.FullMethod, v, err)
			return decErr
		}
		decErr = Validate(v)
		return decErr
	}
	resp, err := m.desc.Handler(m.svc.impl, ctx, decode, s.interceptor)
	if decErr != nil {
		return Result{Err: decErr, Refused: true}
	}
	if err != nil {
		return Result{Err: ToStatusError(err)}
	}
	return Result{Response: resp}
}

// Panicked logs a handler's panic r with its stack and returns the
// INTERNAL status the caller gets: every transport answers a panic so and
// lives on. Call it from the deferred recover of the goroutine that
// panicked, so that the stack is the handler's.
func Panicked(ctx context.Context, logger *slog.Logger, method string, r any) error {
	logger.ErrorContext(ctx, "handler panicked", "method", method, "panic", r, "stack", string(debug.Stack()))
	return status.Errorf(codes.Internal, "handler for %s panicked: %v", method, r)
}

// ToStatusError turns a handler's error into a gRPC status error, mapping
// context errors to DEADLINE_EXCEEDED and CANCELED.
func ToStatusError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if st := status.FromContextError(err); st.Code() != codes.Unknown {
		return st.Err()
	}
	return status.Convert(err).Err()
}

// serverStream collects the response metadata a handler sets with
// grpc.SetHeader, grpc.SendHeader and grpc.SetTrailer.
type serverStream struct {
	method string

	mu         sync.Mutex
	header     metadata.MD
	trailer    metadata.MD
	headerSent bool
}

func (s *serverStream) Method() string { return s.method }

func (s *serverStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headerSent {
		return status.Error(codes.Internal, "response header already sent: call grpc.SetHeader before grpc.SendHeader")
	}
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *serverStream) SendHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headerSent {
		return status.Error(codes.Internal, "response header already sent: grpc.SendHeader may be called once")
	}
	s.header = metadata.Join(s.header, md)
	s.headerSent = true
	return nil
}

func (s *serverStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

func (s *serverStream) result() (metadata.MD, metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header, s.trailer
}

// ChainUnaryServer composes interceptors so the first is outermost. It
// returns nil for none.
func ChainUnaryServer(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	var list []grpc.UnaryServerInterceptor
	for _, i := range interceptors {
		if i != nil {
			list = append(list, i)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return list[0](ctx, req, info, chainServerHandler(list, 0, info, handler))
	}
}

func chainServerHandler(list []grpc.UnaryServerInterceptor, cur int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if cur == len(list)-1 {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return list[cur+1](ctx, req, info, chainServerHandler(list, cur+1, info, final))
	}
}

// Decode returns the decoder Call needs for a request that arrived as
// protobuf bytes.
func Decode(body []byte) func(any) error {
	return func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("%T is not a protobuf message", v)
		}
		return proto.Unmarshal(body, msg)
	}
}

// HandlerContext returns the context an in-process handler runs with: the
// caller's deadline, cancellation and error, but none of its values, so the
// caller's outgoing metadata or credentials do not leak into the handler (and
// on into the calls it makes), as they cannot across a network.
func HandlerContext(caller context.Context) context.Context { return valuesDropped{caller} }

type valuesDropped struct{ context.Context }

func (valuesDropped) Value(any) any { return nil }
