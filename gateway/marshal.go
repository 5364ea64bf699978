package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// defaultMarshaler is grpc-gateway's default: protojson, unpopulated fields
// emitted, unknown fields ignored, google.api.HttpBody passed through.
func defaultMarshaler() runtime.Marshaler {
	return &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
}

// bodyMarshaler wraps the default Marshaler so that a request body that
// does not decode is reported as such (grpc-gateway passes the decoder's
// bare message, "unexpected EOF", on as the 400's message), and decodes a
// body into a message with one protojson pass: JSONPb first scans the body
// with encoding/json to find the end of the value.
type bodyMarshaler struct {
	runtime.Marshaler
	unmarshal protojson.UnmarshalOptions
}

func newBodyMarshaler() bodyMarshaler {
	return bodyMarshaler{
		Marshaler: defaultMarshaler(),
		unmarshal: protojson.UnmarshalOptions{DiscardUnknown: true},
	}
}

func (m bodyMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		if pm, ok := v.(proto.Message); ok {
			b, err := io.ReadAll(r)
			if err != nil {
				return fmt.Errorf("reading the request body: %w", err)
			}
			if len(bytes.TrimSpace(b)) == 0 {
				return io.EOF // no body: grpc-gateway leaves the message empty
			}
			if err := m.unmarshal.Unmarshal(b, pm); err != nil {
				// The parser quotes the offending bytes, which may be
				// anything the client sent.
				return fmt.Errorf("malformed JSON request body: %s", safeText(err.Error()))
			}
			return nil
		}
		// A body mapped to a non-message field.
		err := m.Marshaler.NewDecoder(r).Decode(v)
		if err == nil || errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		return fmt.Errorf("malformed JSON request body: %s", safeText(err.Error()))
	})
}

// Delimiter separates the messages of a server stream: newline-delimited JSON.
func (m bodyMarshaler) Delimiter() []byte {
	if d, ok := m.Marshaler.(runtime.Delimited); ok {
		return d.Delimiter()
	}
	return []byte("\n")
}

// ContentTypeStream is the media type of a server stream's response: one
// JSON object per line (newline-delimited JSON), so that clients and
// proxies do not wait for one JSON document that never closes.
const ContentTypeStream = "application/x-ndjson"

// StreamContentType is the content type of a server stream.
func (m bodyMarshaler) StreamContentType(any) string { return ContentTypeStream }
