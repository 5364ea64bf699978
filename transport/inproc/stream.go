package inproc

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista/internal/dispatch"
)

// streamWindow is how many messages a server-streaming handler may run
// ahead of a client that does not read, as on Kafka.
const streamWindow = 64

// newStream opens a server-streaming call with the semantics of the Kafka
// transport: messages copied through their encoding, at most streamWindow
// of them waiting for the client, the client's cancellation and deadline
// ending the handler's context. Client- and bidi-streaming are refused.
func (cl *Client) newStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if desc != nil && desc.ClientStreams {
		return nil, status.Errorf(codes.Unimplemented, "method %s %s", method, dispatch.ClientStreamingUnimplemented)
	}
	if err := cl.check(method); err != nil {
		return nil, err
	}
	ctx, cancel := cl.contracts.WithDefaultTimeout(ctx, method, cl.opts.defaultTimeout)
	ctx, cancel2 := context.WithCancel(ctx)
	return &clientStream{
		cl: cl, ctx: ctx, cancel: func() { cancel2(); cancel() }, method: method,
		co: dispatch.ParseCallOptions(opts), items: make(chan streamItem, streamWindow),
		headerReady: make(chan struct{}),
	}, nil
}

type streamItem struct {
	body []byte
	end  *dispatch.StreamResult
}

type clientStream struct {
	cl     *Client
	ctx    context.Context
	cancel context.CancelFunc
	method string
	co     dispatch.CallOptions
	items  chan streamItem

	sent        bool
	headerOnce  sync.Once
	headerReady chan struct{}
	header      metadata.MD

	mu      sync.Mutex
	done    bool
	final   error
	trailer metadata.MD
}

func (cs *clientStream) Context() context.Context { return cs.ctx }
func (cs *clientStream) CloseSend() error         { return nil }

func (cs *clientStream) setHeader(md metadata.MD) {
	cs.headerOnce.Do(func() {
		cs.header = md.Copy()
		if cs.header == nil {
			cs.header = metadata.MD{}
		}
		close(cs.headerReady)
	})
}

// SendMsg sends the call's one request and starts the handler.
func (cs *clientStream) SendMsg(m any) error {
	if cs.sent {
		return status.Errorf(codes.Internal, "stream %s: a server-streaming call sends one request", cs.method)
	}
	cs.sent = true
	_, body, err := dispatch.StreamRequest(cs.method, m)
	if err != nil {
		return cs.end(err)
	}
	svc, _, ok := dispatch.SplitMethod(cs.method)
	if !ok {
		return cs.end(status.Errorf(codes.Unimplemented, "malformed method name %q: want /package.Service/Method", cs.method))
	}
	srv, err := cs.cl.ch.waitForService(cs.ctx, svc)
	if err != nil {
		return cs.end(err)
	}
	sm, err := srv.LookupStream(cs.method)
	if err != nil {
		return cs.end(err)
	}
	md, _ := metadata.FromOutgoingContext(cs.ctx)
	sctx := metadata.NewIncomingContext(dispatch.HandlerContext(cs.ctx), md.Copy())
	go func() {
		res := srv.CallStream(sctx, sm, func(v any) error {
			msg, ok := v.(proto.Message)
			if !ok {
				return status.Errorf(codes.Internal, "%T is not a protobuf message", v)
			}
			return proto.Unmarshal(body, msg)
		}, func(msg any, hdr metadata.MD) error {
			pm, ok := msg.(proto.Message)
			if !ok {
				return status.Errorf(codes.Internal, "handler for %s sent %T, not a protobuf message", cs.method, msg)
			}
			b, err := proto.Marshal(pm)
			if err != nil {
				return status.Errorf(codes.Internal, "marshal message of %s: %v", cs.method, err)
			}
			if hdr != nil {
				cs.setHeader(hdr)
			}
			select {
			case cs.items <- streamItem{body: b}:
				return nil
			case <-cs.ctx.Done():
				return status.FromContextError(cs.ctx.Err()).Err()
			}
		})
		select {
		case cs.items <- streamItem{end: &res}:
		case <-cs.ctx.Done():
		}
	}()
	return nil
}

// Header waits for the response header metadata.
func (cs *clientStream) Header() (metadata.MD, error) {
	select {
	case <-cs.headerReady:
		return cs.header, nil
	case <-cs.ctx.Done():
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if cs.done {
			select {
			case <-cs.headerReady:
				return cs.header, nil
			default:
			}
		}
		return nil, status.FromContextError(cs.ctx.Err()).Err()
	}
}

// Trailer returns the trailer metadata once the stream ended.
func (cs *clientStream) Trailer() metadata.MD {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.trailer
}

func (cs *clientStream) RecvMsg(m any) error {
	cs.mu.Lock()
	done, final := cs.done, cs.final
	cs.mu.Unlock()
	if done {
		return final
	}
	var it streamItem
	select {
	case it = <-cs.items:
	case <-cs.ctx.Done():
		return cs.end(status.FromContextError(cs.ctx.Err()).Err())
	}
	if it.end != nil {
		cs.setHeader(it.end.Header)
		cs.mu.Lock()
		cs.trailer = it.end.Trailer.Copy()
		cs.mu.Unlock()
		if it.end.Err != nil {
			return cs.end(it.end.Err)
		}
		return cs.end(io.EOF)
	}
	out, ok := m.(proto.Message)
	if !ok {
		return cs.end(status.Errorf(codes.Internal, "stream %s: reply %T is not a protobuf message", cs.method, m))
	}
	if err := proto.Unmarshal(it.body, out); err != nil {
		return cs.end(status.Errorf(codes.Internal, "stream %s: message does not decode as %T: %v", cs.method, out, err))
	}
	return nil
}

func (cs *clientStream) end(err error) error {
	cs.mu.Lock()
	if cs.done {
		final := cs.final
		cs.mu.Unlock()
		return final
	}
	cs.done, cs.final = true, err
	trailer := cs.trailer
	cs.mu.Unlock()
	var hdr metadata.MD
	select {
	case <-cs.headerReady:
		hdr = cs.header
	default:
	}
	cs.co.Deliver(hdr, trailer)
	cs.cancel()
	return err
}
