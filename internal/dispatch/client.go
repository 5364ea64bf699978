package dispatch

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
)

// CallOptions are the grpc.CallOptions a purista transport honours.
type CallOptions struct {
	Header  *metadata.MD
	Trailer *metadata.MD
}

// ParseCallOptions picks the options a transport acts on; others (such as
// compression or wait-for-ready, which have no meaning on a broker) are
// ignored.
func ParseCallOptions(opts []grpc.CallOption) CallOptions {
	var co CallOptions
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			co.Header = o.HeaderAddr
		case *grpc.HeaderCallOption:
			co.Header = o.HeaderAddr
		case grpc.TrailerCallOption:
			co.Trailer = o.TrailerAddr
		case *grpc.TrailerCallOption:
			co.Trailer = o.TrailerAddr
		}
	}
	return co
}

// Deliver stores response metadata where the call options asked for it.
func (co CallOptions) Deliver(header, trailer metadata.MD) {
	if co.Header != nil {
		if header == nil {
			header = metadata.MD{}
		}
		*co.Header = header
	}
	if co.Trailer != nil {
		if trailer == nil {
			trailer = metadata.MD{}
		}
		*co.Trailer = trailer
	}
}

// ChainUnaryClient composes interceptors around invoke so the first is
// outermost. The interceptors receive a nil *grpc.ClientConn: a purista
// transport is not one.
func ChainUnaryClient(invoke grpc.UnaryInvoker, interceptors ...grpc.UnaryClientInterceptor) grpc.UnaryInvoker {
	for i := len(interceptors) - 1; i >= 0; i-- {
		ic, next := interceptors[i], invoke
		if ic == nil {
			continue
		}
		invoke = func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			return ic(ctx, method, req, reply, cc, next, opts...)
		}
	}
	return invoke
}

// IdempotencyMetadataKey is the outgoing metadata key a caller sets to name
// the logical operation of a call; a repeat of the key is answered with the
// first reply (purista.WithIdempotencyKey).
const IdempotencyMetadataKey = purista.IdempotencyMetadataKey

// IdempotencyKey returns the caller's idempotency key from outgoing metadata.
func IdempotencyKey(md metadata.MD) string {
	if v := md.Get(IdempotencyMetadataKey); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Messages checks that a call's request and reply are protobuf messages, as
// every purista transport needs them to be.
func Messages(method string, args, reply any) (req, out proto.Message, err error) {
	req, ok := args.(proto.Message)
	if !ok {
		return nil, nil, status.Errorf(codes.Internal, "call %s: request %T is not a protobuf message", method, args)
	}
	out, ok = reply.(proto.Message)
	if !ok {
		return nil, nil, status.Errorf(codes.Internal, "call %s: reply %T is not a protobuf message", method, reply)
	}
	return req, out, nil
}

// StreamRequest checks that the one request of a server-streaming call is
// a protobuf message and marshals it.
func StreamRequest(method string, m any) (proto.Message, []byte, error) {
	req, ok := m.(proto.Message)
	if !ok {
		return nil, nil, status.Errorf(codes.Internal, "call %s: request %T is not a protobuf message", method, m)
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "call %s: marshal request: %v", method, err)
	}
	return req, body, nil
}
