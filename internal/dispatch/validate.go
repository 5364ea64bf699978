package dispatch

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// validator is built on first use: building it compiles nothing yet (rules
// are compiled per message type, lazily, and cached).
var validator = sync.OnceValues(func() (protovalidate.Validator, error) { return protovalidate.New() })

// Validate checks msg against the protovalidate rules its contract declares
// (buf.validate annotations). It returns nil when msg is valid or not a
// protobuf message, an INVALID_ARGUMENT status with a google.rpc.BadRequest
// detail listing every field violation when it is not, and INTERNAL when
// the contract's rules themselves cannot be compiled or evaluated (the
// service's fault, not the caller's).
func Validate(msg any) error {
	m, ok := msg.(proto.Message)
	if !ok || m == nil {
		return nil
	}
	v, err := validator()
	if err != nil {
		return status.Errorf(codes.Internal, "the protovalidate validator could not be built: %v", err)
	}
	err = v.Validate(m)
	if err == nil {
		return nil
	}
	name := m.ProtoReflect().Descriptor().FullName()
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return status.Errorf(codes.Internal, "the validation rules of %s cannot be applied: %v: fix the buf.validate annotations of the contract", name, err)
	}
	return ViolationsStatus(string(name), verr).Err()
}

// ViolationsStatus is the INVALID_ARGUMENT status of a request that broke
// its message's rules: the message lists them, a google.rpc.BadRequest
// detail carries one field violation each (field path as protovalidate
// writes it, e.g. "user.email"; reason the rule id, e.g. "string.email").
func ViolationsStatus(message string, verr *protovalidate.ValidationError) *status.Status {
	br := &errdetails.BadRequest{}
	parts := make([]string, 0, len(verr.Violations))
	for _, v := range verr.Violations {
		field := protovalidate.FieldPathString(v.Proto.GetField())
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       field,
			Description: v.Proto.GetMessage(),
			Reason:      v.Proto.GetRuleId(),
		})
		if field == "" {
			parts = append(parts, v.Proto.GetMessage())
		} else {
			parts = append(parts, field+": "+v.Proto.GetMessage())
		}
	}
	st := status.New(codes.InvalidArgument, fmt.Sprintf("invalid %s: %s; correct the request (the google.rpc.BadRequest detail lists each field)", message, strings.Join(parts, "; ")))
	if d, err := st.WithDetails(br); err == nil {
		st = d
	}
	return st
}
