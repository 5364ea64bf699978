package gateway

import (
	"errors"
	"fmt"
	"io"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
)

// defaultMarshaler is grpc-gateway's default: protojson, unpopulated fields
// emitted, unknown fields ignored, google.api.HttpBody passed through.
func defaultMarshaler() runtime.Marshaler {
	return &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
}

// bodyMarshaler wraps a Marshaler so that a request body that does not
// decode is reported as such: grpc-gateway passes the decoder's bare message
// ("unexpected EOF") on as the 400's message.
type bodyMarshaler struct{ runtime.Marshaler }

func (m bodyMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := m.Marshaler.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		err := d.Decode(v)
		if err == nil || errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		return fmt.Errorf("malformed JSON request body: %w", err)
	})
}

// Delimiter separates the messages of a server stream: newline-delimited JSON.
func (m bodyMarshaler) Delimiter() []byte {
	if d, ok := m.Marshaler.(runtime.Delimited); ok {
		return d.Delimiter()
	}
	return []byte("\n")
}

// StreamContentType is the content type of a server stream.
func (m bodyMarshaler) StreamContentType(v any) string {
	if s, ok := m.Marshaler.(runtime.StreamContentType); ok {
		return s.StreamContentType(v)
	}
	return m.Marshaler.ContentType(v)
}
