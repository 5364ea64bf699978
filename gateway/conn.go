package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista/internal/dispatch"
)

// ReasonNoAnswer is the google.rpc.ErrorInfo reason of a 504 the gateway
// explains: no instance of the service answered within the deadline.
const ReasonNoAnswer = "NO_SERVICE_ANSWERED"

// conn sits between grpc-gateway's generated handlers and the transport. It
// adds the Authenticator's metadata, refuses calls whose body overflowed, and
// turns a bare DEADLINE_EXCEEDED into one that names the service and topic.
type gatewayConn struct {
	g  *Gateway
	cc grpc.ClientConnInterface
}

func (c *gatewayConn) prepare(ctx context.Context, method string) (context.Context, *route, error) {
	st := stateFrom(ctx)
	r := c.g.byMethod[method]
	if st == nil {
		return ctx, r, nil
	}
	if st.route != nil && st.route.FullMethod == method {
		r = st.route
	} else if st.authed {
		// grpc-gateway routed the request to another method than the route
		// table did (the contract's HTTP list and its generated handlers
		// disagree): what was checked is not what is called. Check again,
		// for this method, rather than let it through.
		st.authed, st.authMD = false, nil
	}
	if st.bodyTooLarge {
		return ctx, r, c.g.tooLarge()
	}
	if !st.authed {
		if r == nil {
			return ctx, r, status.Errorf(codes.Internal, "gateway: method %s is not in the route table", method)
		}
		if !r.Public && c.g.auth != nil && st.req != nil {
			rt := r.Route
			rt.Verb, rt.Path = st.req.Method, st.req.URL.Path
			actx, err := c.g.auth.Authenticate(st.req, rt)
			if err != nil {
				s, _ := authStatus(err)
				return ctx, r, s.Err()
			}
			if actx != nil {
				st.authMD, _ = metadata.FromOutgoingContext(actx)
			}
		}
		st.authed = true
	}
	if len(st.authMD) > 0 {
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		for k, v := range st.authMD {
			md[k] = v
		}
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	return ctx, r, nil
}

func (c *gatewayConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx, r, err := c.prepare(ctx, method)
	if err != nil {
		return err
	}
	if err := c.g.checkSize(args); err != nil {
		return err
	}
	// The contract's protovalidate rules, before a record is produced: a
	// 400 with the field violations, and no service's time spent.
	if err := dispatch.Validate(args); err != nil {
		return err
	}
	err = c.cc.Invoke(ctx, method, args, reply, opts...)
	if err != nil {
		return c.g.explain(ctx, err, method, r)
	}
	return nil
}

func (c *gatewayConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, r, err := c.prepare(ctx, method)
	if err != nil {
		return nil, err
	}
	s, err := c.cc.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, c.g.explain(ctx, err, method, r)
	}
	return validatingStream{s}, nil
}

// validatingStream checks each request message against the contract's
// protovalidate rules before it is sent.
type validatingStream struct{ grpc.ClientStream }

func (s validatingStream) SendMsg(m any) error {
	if err := dispatch.Validate(m); err != nil {
		return err
	}
	return s.ClientStream.SendMsg(m)
}

// checkSize refuses a request message that encodes larger than the body
// limit, which is sized to what the broker takes: path and query
// parameters and JSON's number forms can make a message larger than its
// body, and the broker's refusal would reach the client as a 429 that
// invites the same request again.
func (g *Gateway) checkSize(args any) error {
	m, ok := args.(proto.Message)
	if !ok || g.maxBody <= 0 {
		return nil
	}
	if n := proto.Size(m); int64(n) > g.maxBody {
		return &runtime.HTTPStatusError{
			HTTPStatus: http.StatusRequestEntityTooLarge,
			Err:        status.Errorf(codes.ResourceExhausted, "the request encodes to %d bytes, more than the gateway's limit of %d bytes: send less per request", n, g.maxBody),
		}
	}
	return nil
}

// explain makes a DEADLINE_EXCEEDED caused by the call's own deadline say
// which service and method did not answer, and adds the ErrorInfo detail
// (reason NO_SERVICE_ANSWERED, metadata service and method) clients can
// branch on. The transport's own message, which names topics and its call
// id, goes to the request's log line instead. A DEADLINE_EXCEEDED a
// service returned while the call still had time is its answer and stays
// as it is.
func (g *Gateway) explain(ctx context.Context, err error, method string, r *route) error {
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.DeadlineExceeded || r == nil || !expired(ctx) {
		return err
	}
	within := ""
	st := stateFrom(ctx)
	if st != nil {
		if st.timeout > 0 {
			within = " within " + st.timeout.String()
		}
		st.cause, st.explained = s.Message(), true
	}
	p := s.Proto()
	p.Message = fmt.Sprintf("no instance of service %s answered %s%s: check that the service is running and keeping up, then retry", r.Service, method, within)
	ns := status.FromProto(p)
	if d, err := ns.WithDetails(&errdetails.ErrorInfo{
		Reason:   ReasonNoAnswer,
		Domain:   "purista",
		Metadata: map[string]string{"service": r.Service, "method": method},
	}); err == nil {
		ns = d
	}
	return ns.Err()
}

// expired reports whether ctx's deadline has passed. It looks at the clock,
// not only ctx.Err(): a gRPC server's own timer can end the call a moment
// before the client context's timer has fired.
func expired(ctx context.Context) bool {
	if ctx.Err() == context.DeadlineExceeded {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}
