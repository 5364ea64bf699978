package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

var statusJSON = protojson.MarshalOptions{EmitUnpopulated: true}

func (g *Gateway) tooLarge() error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestEntityTooLarge,
		Err:        status.Errorf(codes.ResourceExhausted, "request body is larger than the gateway's limit of %d bytes", g.maxBody),
	}
}

// handleError is the mux's error handler: the HTTP status comes from
// grpc-gateway's mapping of the gRPC code unless the error carries an HTTP
// status of its own; the body is the google.rpc.Status as JSON, always with
// code, message and details.
func (g *Gateway) handleError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if st := stateFrom(r.Context()); st != nil && st.bodyTooLarge {
		err = g.tooLarge()
	} else if st != nil && st.bodyTimeout {
		err = &runtime.HTTPStatusError{
			HTTPStatus: http.StatusRequestTimeout,
			Err:        status.Errorf(codes.DeadlineExceeded, "the request body did not arrive within %v: send it faster or in a smaller request", g.bodyTimeout),
		}
		w.Header().Set("Connection", "close")
	}
	httpStatus := 0
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		httpStatus, err = hse.HTTPStatus, hse.Err
	}
	s := status.Convert(err)
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		g.writeHeaderMD(w, md.HeaderMD)
		if acceptsTrailers(r) {
			g.writeTrailerMD(w, md.TrailerMD)
		}
	}
	g.writeStatus(w, r, httpStatus, s)
}

// writeStatus writes s as the JSON error body with httpStatus, or the
// status mapped from its code when httpStatus is 0. A 5xx body is made
// public first (publicStatus). The body is always written: a message that
// does not encode (invalid UTF-8 from a parser quoting the client's bytes)
// is repaired, and a detail that does not encode is dropped, so that the
// client's bad input never turns into the gateway's 500.
func (g *Gateway) writeStatus(w http.ResponseWriter, r *http.Request, httpStatus int, s *status.Status) {
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(s.Code())
	}
	p := s.Proto()
	if httpStatus >= 500 {
		var st *reqState
		if r != nil {
			st = stateFrom(r.Context())
		}
		p = publicStatus(st, w.Header().Get("X-Request-Id"), p)
	}
	writeBody(w, httpStatus, p)
}

// writeOwn writes a status whose message the gateway wrote for clients,
// also when it is a 5xx.
func (g *Gateway) writeOwn(w http.ResponseWriter, httpStatus int, s *status.Status) {
	writeBody(w, httpStatus, s.Proto())
}

func writeBody(w http.ResponseWriter, httpStatus int, p *spb.Status) {
	p.Message = strings.ToValidUTF8(p.Message, "\uFFFD")
	body, err := statusJSON.Marshal(p)
	if err != nil {
		p.Details = nil
		if body, err = statusJSON.Marshal(p); err != nil {
			body = fmt.Appendf(nil, `{"code":%d,"message":"the error could not be encoded","details":[]}`, p.Code)
		}
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// publicStatus is what a client sees of a server-side failure: what
// happened and to which method, the request id to quote, and none of the
// transport's words, which name broker addresses, topics and local ports.
// Those stay in the request's log line (reqState.cause, logged by serveAPI
// with the same request id). Details survive except google.rpc.DebugInfo,
// whose stack entries are for the log too.
func publicStatus(st *reqState, rid string, p *spb.Status) *spb.Status {
	method := "the call"
	if st != nil && st.route != nil {
		method = st.route.FullMethod
	}
	explained := false
	if st != nil {
		explained = st.explained
		if !explained && st.cause == "" {
			st.cause = p.Message
		}
	}
	out := &spb.Status{Code: p.Code}
	for _, d := range p.Details {
		if !strings.HasSuffix(d.GetTypeUrl(), "/google.rpc.DebugInfo") {
			out.Details = append(out.Details, d)
		}
	}
	switch {
	case explained:
		out.Message = p.Message
	case codes.Code(p.Code) == codes.Unavailable:
		out.Message = method + " is unavailable right now: retry later"
	case codes.Code(p.Code) == codes.DeadlineExceeded:
		out.Message = method + " did not finish within its deadline"
	case codes.Code(p.Code) == codes.Unimplemented:
		out.Message = method + " is not implemented by the service that answered"
	default:
		out.Message = method + " failed with an internal error"
	}
	if rid != "" {
		out.Message += " (request id " + rid + "; the gateway's log has the details)"
	}
	return out
}

// handleStreamError turns an error that ends a server stream after it
// began into the stream's last line: a server-side failure is made public
// as in an error body, and its own message logged here, since the
// request's log line reports the 200 the stream began with.
func (g *Gateway) handleStreamError(ctx context.Context, err error) *status.Status {
	s := status.Convert(err)
	if runtime.HTTPStatusFromCode(s.Code()) < 500 {
		return status.FromProto(&spb.Status{Code: int32(s.Code()), Message: strings.ToValidUTF8(s.Message(), "\uFFFD"), Details: s.Proto().Details})
	}
	st, rid := stateFrom(ctx), ""
	if st != nil && st.req != nil {
		rid = st.req.Header.Get("X-Request-Id")
	}
	g.log.Warn("gateway: server stream ended with a server error", "request_id", rid, "code", s.Code().String(), "error", s.Message())
	return status.FromProto(publicStatus(st, rid, s.Proto()))
}

// handleRoutingError answers requests grpc-gateway found no handler for.
// grpc-gateway's default would answer a wrong verb with 501; it is 405 with
// an Allow header here.
func (g *Gateway) handleRoutingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var err error
	switch httpStatus {
	case http.StatusNotFound:
		err = status.Errorf(codes.NotFound, "no route for %s %s", r.Method, r.URL.Path)
	case http.StatusMethodNotAllowed:
		allowed := g.matcher.allowed(r)
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
		}
		err = status.Errorf(codes.Unimplemented, "method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allowed, ", "))
	case http.StatusBadRequest:
		err = status.Errorf(codes.InvalidArgument, "bad request path %q", r.URL.Path)
	default:
		err = status.Errorf(codes.Internal, "unexpected routing error %d", httpStatus)
	}
	g.handleError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: err})
}

// incomingHeader maps an allowed request header to its metadata key.
// Authorization is left out: grpc-gateway forwards it on its own, and the
// gateway removes it first when it is not allowed.
func (g *Gateway) incomingHeader(key string) (string, bool) {
	if key == "Authorization" {
		return "", false
	}
	if g.fwdExact[key] {
		return strings.ToLower(key), true
	}
	for _, p := range g.fwdPrefix {
		if strings.HasPrefix(key, p) {
			return strings.ToLower(key), true
		}
	}
	return "", false
}

// outgoingHeader maps response header metadata to an HTTP header.
func (g *Gateway) outgoingHeader(key string) (string, bool) {
	if h, ok := g.respHeaders[key]; ok {
		return h, true
	}
	return runtime.MetadataHeaderPrefix + key, true
}

func (g *Gateway) writeHeaderMD(w http.ResponseWriter, md metadata.MD) {
	for k, vs := range md {
		if h, ok := g.outgoingHeader(k); ok {
			for _, v := range vs {
				w.Header().Add(h, v)
			}
		}
	}
}

func (g *Gateway) writeTrailerMD(w http.ResponseWriter, md metadata.MD) {
	for k, vs := range md {
		for _, v := range vs {
			w.Header().Add(runtime.MetadataTrailerPrefix+k, v)
		}
	}
}

func acceptsTrailers(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("TE")), "trailers")
}

func canonicalHeader(key string) string { return textproto.CanonicalMIMEHeaderKey(key) }

// errorf is a shorthand for the gateway's own errors.
func errorf(c codes.Code, format string, args ...any) *status.Status {
	return status.New(c, fmt.Sprintf(format, args...))
}
