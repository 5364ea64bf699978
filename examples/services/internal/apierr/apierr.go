// Package apierr builds the error statuses the example services return,
// with the google.rpc details clients (and the gateway's JSON) rely on.
package apierr

import (
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Violations collects the problems of one request, field by field.
type Violations []*errdetails.BadRequest_FieldViolation

// Add records that field (a path such as "items[0].quantity") is wrong.
func (v *Violations) Add(field, description string) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{Field: field, Description: description})
}

// Err returns nil when nothing was recorded, else INVALID_ARGUMENT with msg
// and a google.rpc.BadRequest detail listing every violation.
func (v Violations) Err(msg string) error {
	if len(v) == 0 {
		return nil
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{FieldViolations: v})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// Invalid is INVALID_ARGUMENT for one field.
func Invalid(field, description string) error {
	var v Violations
	v.Add(field, description)
	return v.Err(field + " " + description)
}

// NotFound is NOT_FOUND for a missing resource, with a
// google.rpc.ResourceInfo detail naming it.
func NotFound(resourceType, name string) error {
	return withResource(codes.NotFound, resourceType+" "+strconv.Quote(name)+" does not exist", resourceType, name, "")
}

// AlreadyExists is ALREADY_EXISTS, naming the resource that exists.
func AlreadyExists(msg, resourceType, name, why string) error {
	return withResource(codes.AlreadyExists, msg, resourceType, name, why)
}

func withResource(code codes.Code, msg, resourceType, name, why string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ResourceInfo{ResourceType: resourceType, ResourceName: name, Description: why})
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}
