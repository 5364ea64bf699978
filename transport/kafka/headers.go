package kafka

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Header names, as specified in docs/protocol.md.
const (
	protocolVersion = "1"

	hdrVersion        = "purista-version"
	hdrID             = "purista-id"
	hdrMethod         = "purista-method"
	hdrReplyTo        = "purista-reply-to"
	hdrDeadline       = "purista-deadline"
	hdrContentType    = "content-type"
	hdrIdempotencyKey = "purista-idempotency-key"
	hdrTraceparent    = "traceparent"
	hdrTracestate     = "tracestate"
	hdrMDPrefix       = "purista-md-"

	hdrCorrelationID = "purista-correlation-id"
	hdrStatus        = "purista-status"
	hdrMessage       = "purista-message"
	hdrStatusBin     = "purista-status-bin"
	hdrHeaderPrefix  = "purista-header-"
	hdrTrailerPrefix = "purista-trailer-"

	hdrDeadLetterReason = "purista-dead-letter-reason"
	hdrKeepalive        = "purista-keepalive"

	contentTypeProto = "application/protobuf"
)

// Header values every record carries alike, encoded once. kafka-go only
// reads them while it writes a record: they are never modified.
var (
	versionValue     = []byte(protocolVersion)
	contentTypeValue = []byte(contentTypeProto)
	statusOKValue    = []byte("0")
)

// requestHeaders is a request record's headers, decoded.
type requestHeaders struct {
	version string
	id      string
	// idValue is id as the record carried it: the reply's
	// purista-correlation-id shares it, as nothing writes to a fetched
	// record's header values.
	idValue        []byte
	method         string
	replyTo        string
	deadline       time.Time
	idempotencyKey string
	md             metadata.MD
}

// requestID is the caller's X-Request-Id (the gateway's, or one a client
// set as "x-request-id" metadata), which log lines carry beside the
// record's own id so that one id leads from the HTTP response to them.
func (h *requestHeaders) requestID() string {
	if v := h.md.Get("x-request-id"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// encodeRequestHeaders returns a request record's headers. The byte values
// are the record's from here on (kafka-go only reads them), and id is this
// record's alone: the deadline's digits may go into its spare capacity.
func encodeRequestHeaders(id, method, replyTo []byte, deadline time.Time, idemKey string, md metadata.MD) []kafka.Header {
	h := make([]kafka.Header, 0, 6+len(md))
	h = append(h,
		kafka.Header{Key: hdrVersion, Value: versionValue},
		kafka.Header{Key: hdrID, Value: id},
		kafka.Header{Key: hdrMethod, Value: method},
		kafka.Header{Key: hdrReplyTo, Value: replyTo},
		kafka.Header{Key: hdrContentType, Value: contentTypeValue},
	)
	if !deadline.IsZero() {
		// In the spare capacity of id when there is some (newCallID).
		v := strconv.AppendInt(id[len(id):], deadline.UnixMilli(), 10)
		h = append(h, kafka.Header{Key: hdrDeadline, Value: v[:len(v):len(v)]})
	}
	if idemKey != "" {
		h = append(h, kafka.Header{Key: hdrIdempotencyKey, Value: []byte(idemKey)})
	}
	return appendCallMD(h, md)
}

// newCallID returns a new request id, as a string and as a header value
// with room after it for the deadline's digits: one allocation for both
// header values.
func newCallID() (string, []byte) {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	b := make([]byte, 32, 32+20)
	hex.Encode(b, raw[:])
	return string(b), b[:32:cap(b)]
}

func decodeRequestHeaders(hs []kafka.Header) requestHeaders {
	var r requestHeaders
	for _, h := range hs {
		switch {
		case h.Key == hdrVersion:
			r.version = string(h.Value)
		case h.Key == hdrID:
			r.id, r.idValue = string(h.Value), h.Value
		case h.Key == hdrMethod:
			r.method = string(h.Value)
		case h.Key == hdrReplyTo:
			r.replyTo = string(h.Value)
		case h.Key == hdrDeadline:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				r.deadline = time.UnixMilli(ms)
			}
		case h.Key == hdrIdempotencyKey:
			r.idempotencyKey = string(h.Value)
		default:
			r.md = readCallMD(r.md, h)
		}
	}
	return r
}

// appendCallMD adds the caller's metadata: W3C trace context headers
// verbatim, every other key as purista-md-<key>, one header per value.
func appendCallMD(h []kafka.Header, md metadata.MD) []kafka.Header {
	for k, vs := range md {
		k = strings.ToLower(k)
		for _, v := range vs {
			switch k {
			case hdrTraceparent, hdrTracestate:
				h = append(h, kafka.Header{Key: k, Value: []byte(v)})
			default:
				h = append(h, kafka.Header{Key: hdrMDPrefix + k, Value: []byte(v)})
			}
		}
	}
	return h
}

// readCallMD adds h to md when it carries caller metadata, making md when
// it is nil, and returns md.
func readCallMD(md metadata.MD, h kafka.Header) metadata.MD {
	var k string
	switch {
	case h.Key == hdrTraceparent || h.Key == hdrTracestate:
		k = h.Key
	case strings.HasPrefix(h.Key, hdrMDPrefix):
		k = h.Key[len(hdrMDPrefix):]
	default:
		return md
	}
	if md == nil {
		md = metadata.MD{}
	}
	md.Append(k, string(h.Value))
	return md
}

func appendMD(h []kafka.Header, prefix string, md metadata.MD) []kafka.Header {
	for k, vs := range md {
		for _, v := range vs {
			h = append(h, kafka.Header{Key: prefix + strings.ToLower(k), Value: []byte(v)})
		}
	}
	return h
}

func headerValue(hs []kafka.Header, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// appendStatusHeaders appends the status headers of a reply or stored
// reply to h.
func appendStatusHeaders(h []kafka.Header, st *status.Status) []kafka.Header {
	if st.Code() == codes.OK {
		return append(h, kafka.Header{Key: hdrStatus, Value: statusOKValue})
	}
	h = append(h,
		kafka.Header{Key: hdrStatus, Value: strconv.AppendInt(nil, int64(st.Code()), 10)},
		kafka.Header{Key: hdrMessage, Value: []byte(st.Message())})
	if b, err := proto.Marshal(st.Proto()); err == nil {
		h = append(h, kafka.Header{Key: hdrStatusBin, Value: b})
	}
	return h
}

// replyStatus is what the headers of a reply, or of a stored reply, say of
// its call: the status and the response metadata.
type replyStatus struct {
	code            codes.Code // Unknown without a purista-status header
	hasCode         bool
	message         string
	details         []byte // purista-status-bin: a google.rpc.Status
	header, trailer metadata.MD
}

func decodeReplyHeaders(hs []kafka.Header) replyStatus {
	r := replyStatus{code: codes.Unknown}
	for _, h := range hs {
		switch {
		case h.Key == hdrStatus:
			if n, err := strconv.Atoi(string(h.Value)); err == nil {
				r.code, r.hasCode = codes.Code(n), true
			}
		case h.Key == hdrMessage:
			r.message = string(h.Value)
		case h.Key == hdrStatusBin:
			r.details = h.Value
		case len(h.Key) > len(hdrHeaderPrefix) && h.Key[:len(hdrHeaderPrefix)] == hdrHeaderPrefix:
			if r.header == nil {
				r.header = metadata.MD{}
			}
			r.header.Append(h.Key[len(hdrHeaderPrefix):], string(h.Value))
		case len(h.Key) > len(hdrTrailerPrefix) && h.Key[:len(hdrTrailerPrefix)] == hdrTrailerPrefix:
			if r.trailer == nil {
				r.trailer = metadata.MD{}
			}
			r.trailer.Append(h.Key[len(hdrTrailerPrefix):], string(h.Value))
		}
	}
	return r
}

// err is the call's error: nil for OK, else the status the headers carry,
// with its details when purista-status-bin decodes.
func (r replyStatus) err() error {
	if r.code == codes.OK {
		return nil
	}
	if len(r.details) > 0 {
		var sp spb.Status
		if err := proto.Unmarshal(r.details, &sp); err == nil {
			return status.FromProto(&sp).Err()
		}
	}
	return status.Error(r.code, r.message)
}
