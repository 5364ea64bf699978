package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
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
	g.writeStatus(w, httpStatus, s)
}

// writeStatus writes s as the JSON error body with httpStatus, or the
// status mapped from its code when httpStatus is 0.
func (g *Gateway) writeStatus(w http.ResponseWriter, httpStatus int, s *status.Status) {
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(s.Code())
	}
	body, err := statusJSON.Marshal(s.Proto())
	if err != nil {
		httpStatus = http.StatusInternalServerError
		body = []byte(`{"code":13,"message":"gateway: failed to marshal the error status","details":[]}`)
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
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
