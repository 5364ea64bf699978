// Package callctx reads and passes on the request metadata of a call.
package callctx

import (
	"context"
	"time"

	"google.golang.org/grpc/metadata"
)

// Propagated are the metadata keys a service passes on to the services it
// calls while handling a request: the request id the gateway assigned and
// the W3C trace context, so one request can be followed through every log.
var Propagated = []string{"x-request-id", "traceparent", "tracestate"}

// RequestID returns the x-request-id of the call being handled ("" when
// none was sent).
func RequestID(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// DeadlineLeft says how long the call being handled has left, for logs.
func DeadlineLeft(ctx context.Context) string {
	d, ok := ctx.Deadline()
	if !ok {
		return "none"
	}
	return time.Until(d).Round(time.Millisecond).String()
}

// Outgoing returns ctx prepared for a call to another service: its outgoing
// metadata is exactly the keys in Propagated, copied from the incoming
// metadata — whatever else was on ctx's outgoing metadata is dropped, so
// add metadata of your own after calling it. The deadline needs nothing: it
// is part of ctx, and the transport sends it with the request.
func Outgoing(ctx context.Context) context.Context {
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{}
	for _, k := range Propagated {
		if v := in.Get(k); len(v) > 0 {
			out[k] = append([]string(nil), v...)
		}
	}
	return metadata.NewOutgoingContext(ctx, out)
}
