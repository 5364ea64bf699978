package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxRequestIDLen bounds a client's X-Request-Id: it travels in every
// record header and log line of the call.
const maxRequestIDLen = 128

// checkInput refuses, with InvalidArgument, what the client sent that no
// protobuf message can carry: grpc-gateway copies path and query parameters
// into string fields without checking them, and the transport's marshal
// step would then fail with INTERNAL, blaming the server for the client's
// bytes. Headers bound for metadata must be printable ASCII for gRPC.
// Messages name the part that is wrong but never echo its bytes.
func (g *Gateway) checkInput(r *http.Request) *status.Status {
	if !utf8.ValidString(r.URL.Path) {
		return errorf(codes.InvalidArgument, "the request path is not valid UTF-8 once percent-decoded: encode text as UTF-8 before percent-encoding it")
	}
	if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return errorf(codes.InvalidArgument, "malformed query string: %s", safeText(err.Error()))
		}
		for k, vs := range q {
			if !utf8.ValidString(k) {
				return errorf(codes.InvalidArgument, "a query parameter name is not valid UTF-8 once percent-decoded: encode text as UTF-8 before percent-encoding it")
			}
			for _, v := range vs {
				if !utf8.ValidString(v) {
					return errorf(codes.InvalidArgument, "query parameter %q is not valid UTF-8 once percent-decoded: encode text as UTF-8 before percent-encoding it", k)
				}
			}
		}
	}
	for k, vs := range r.Header {
		if !g.forwarded(k) {
			continue
		}
		for _, v := range vs {
			if !printableASCII(v) {
				return errorf(codes.InvalidArgument, "header %s has characters outside printable ASCII, which gRPC metadata cannot carry: send it ASCII-only (percent- or base64-encode other text)", k)
			}
		}
	}
	return nil
}

// validRequestID reports whether the X-Request-Id values a client sent
// can be used: none, or one of printable ASCII and bounded length (an empty
// one counts as none).
func validRequestID(vs []string) bool {
	switch len(vs) {
	case 0:
		return true
	case 1:
		return len(vs[0]) <= maxRequestIDLen && printableASCII(vs[0])
	}
	return false
}

// forwarded reports whether the request header key (canonical form) goes
// to the service as metadata.
func (g *Gateway) forwarded(key string) bool {
	if key == "Authorization" {
		return g.fwdAuth
	}
	_, ok := g.incomingHeader(key)
	return ok
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// safeText makes text from a parser, which may quote the client's bytes,
// fit for an error body: valid UTF-8, no control characters, bounded.
func safeText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s)
	const max = 512
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
