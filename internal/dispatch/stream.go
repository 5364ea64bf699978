package dispatch

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
)

// StreamMethod is a server-streaming method a Server can run.
type StreamMethod struct {
	FullMethod string
	Service    string
	Name       string
	// Contract is the method's purista description (see Method.Contract).
	Contract *purista.Method

	svc  *service
	desc *grpc.StreamDesc
}

// ClientStreamingUnimplemented explains why a broker transport refuses
// client- and bidi-streaming methods.
const ClientStreamingUnimplemented = "is client- or bidi-streaming: purista transports carry unary and server-streaming calls only, " +
	"because a request that waits in a topic for an instance cannot be followed by more messages that another instance might take; " +
	"send the input as one request (or as events) instead"

// LookupStream finds a server-streaming method. The error is a gRPC status
// error suitable for the caller: UNIMPLEMENTED for unknown, unary, client-
// and bidi-streaming methods.
func (s *Server) LookupStream(fullMethod string) (StreamMethod, error) {
	svc, svcName, name, err := s.service(fullMethod)
	if err != nil {
		return StreamMethod{}, err
	}
	sd, ok := svc.streams[name]
	switch {
	case !ok && svc.methods[name] != nil:
		return StreamMethod{}, status.Errorf(codes.Unimplemented, "method %s is unary: call it with Invoke, not as a stream", fullMethod)
	case !ok:
		return StreamMethod{}, status.Errorf(codes.Unimplemented, "unknown method %s for service %s", name, svcName)
	case sd.ClientStreams:
		return StreamMethod{}, status.Errorf(codes.Unimplemented, "method %s %s", fullMethod, ClientStreamingUnimplemented)
	}
	_, contract, _ := s.contracts.Method(fullMethod)
	return StreamMethod{FullMethod: fullMethod, Service: svcName, Name: name, Contract: contract, svc: svc, desc: sd}, nil
}

// HasStreams reports whether a registered service has server-streaming
// methods.
func (s *Server) HasStreams() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, svc := range s.services {
		for _, sd := range svc.streams {
			if sd.ServerStreams && !sd.ClientStreams {
				return true
			}
		}
	}
	return false
}

// StreamResult is how a server-streaming handler ended.
type StreamResult struct {
	// Header is the response header metadata not yet sent with a message
	// (the handler sent none).
	Header  metadata.MD
	Trailer metadata.MD
	// Err is nil or an error convertible with status.Convert.
	Err error
}

// CallStream runs the server-streaming method m: dec decodes its one
// request, send is called with every message in order and, with the first
// one, the response header metadata. ctx must carry the call's deadline and
// incoming metadata; cancelling it is how the client's cancellation reaches
// the handler. Unary interceptors do not run on streams, as in gRPC. A
// panic becomes INTERNAL.
func (s *Server) CallStream(ctx context.Context, m StreamMethod, dec func(any) error, send func(msg any, header metadata.MD) error) (res StreamResult) {
	st := &handlerStream{ctx: ctx, method: m.FullMethod, dec: dec, send: send}
	st.ctx = grpc.NewContextWithServerTransportStream(ctx, transportStream{st})
	defer func() {
		if r := recover(); r != nil {
			res.Err = Panicked(ctx, s.logger, m.FullMethod, r)
		}
		st.mu.Lock()
		if !st.headerSent {
			res.Header = st.header
		}
		res.Trailer = st.trailer
		st.mu.Unlock()
	}()
	err := m.desc.Handler(m.svc.impl, st)
	if err != nil && st.decErr != nil {
		err = st.decErr
	}
	return StreamResult{Err: ToStatusError(err)}
}

// handlerStream is the grpc.ServerStream a streaming handler gets.
type handlerStream struct {
	ctx    context.Context
	method string
	dec    func(any) error
	send   func(any, metadata.MD) error

	mu         sync.Mutex
	received   bool
	decErr     error
	header     metadata.MD
	headerSent bool
	trailer    metadata.MD
}

func (h *handlerStream) Context() context.Context { return h.ctx }

// transportStream is the context's grpc.ServerTransportStream, so that
// grpc.Method, grpc.SetHeader and grpc.SetTrailer work in the handler.
type transportStream struct{ h *handlerStream }

func (t transportStream) Method() string                  { return t.h.method }
func (t transportStream) SetHeader(md metadata.MD) error  { return t.h.SetHeader(md) }
func (t transportStream) SendHeader(md metadata.MD) error { return t.h.SendHeader(md) }
func (t transportStream) SetTrailer(md metadata.MD) error { t.h.SetTrailer(md); return nil }

func (h *handlerStream) SetHeader(md metadata.MD) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.headerSent {
		return status.Error(codes.Internal, "response header already sent: set it before the first message")
	}
	h.header = metadata.Join(h.header, md)
	return nil
}

// SendHeader records md; the header travels with the first message (or
// the final status when there is none).
func (h *handlerStream) SendHeader(md metadata.MD) error { return h.SetHeader(md) }

func (h *handlerStream) SetTrailer(md metadata.MD) {
	h.mu.Lock()
	h.trailer = metadata.Join(h.trailer, md)
	h.mu.Unlock()
}

func (h *handlerStream) SendMsg(m any) error {
	if err := h.ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	h.mu.Lock()
	var hdr metadata.MD
	if !h.headerSent {
		hdr, h.headerSent = h.header, true
		if hdr == nil {
			hdr = metadata.MD{}
		}
	}
	h.mu.Unlock()
	return h.send(m, hdr)
}

func (h *handlerStream) RecvMsg(m any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.received {
		return io.EOF
	}
	h.received = true
	if err := h.dec(m); err != nil {
		h.decErr = status.Errorf(codes.InvalidArgument, "request for %s does not decode as %T: %v", h.method, m, err)
		return h.decErr
	}
	// Unary interceptors do not run on streams: the request is checked
	// against its contract's rules here instead.
	if err := Validate(m); err != nil {
		h.decErr = err
		return err
	}
	return nil
}
