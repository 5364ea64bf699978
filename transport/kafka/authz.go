package kafka

import (
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Authorization: a broker with ACLs (docs/security.md) answers an act the
// principal may not do with an authorization error. The transport reports
// it at once as PERMISSION_DENIED naming the principal and the topic or
// group: retrying cannot help, and an operator needs both names to fix it.

// denied reports whether err is a broker's refusal on authorization
// grounds.
func denied(err error) bool {
	return errors.Is(err, kafka.TopicAuthorizationFailed) ||
		errors.Is(err, kafka.GroupAuthorizationFailed) ||
		errors.Is(err, kafka.ClusterAuthorizationFailed) ||
		errors.Is(err, kafka.TransactionalIDAuthorizationFailed)
}

// principal names who the transport authenticates as.
func (c *commonConfig) principal() string {
	if c.saslUser != "" {
		return "User:" + c.saslUser
	}
	if c.tls != nil {
		return "of this client's TLS certificate"
	}
	return "User:ANONYMOUS"
}

// permissionDenied is err, a denied act ("write to topic x"), as a
// PERMISSION_DENIED status that says what to do.
func (c *commonConfig) permissionDenied(act string, err error) error {
	return status.Errorf(codes.PermissionDenied,
		"kafka: principal %s may not %s (%v): the cluster's ACLs forbid it; if it should, grant it with `purista acl apply` (docs/security.md)",
		c.principal(), act, err)
}

// errorArg returns the first error among a log line's arguments.
func errorArg(args []any) error {
	for _, a := range args {
		if err, ok := a.(error); ok {
			return err
		}
	}
	return nil
}

// groupDenied is the error of a server whose principal may not join group.
func (c *commonConfig) groupDenied(group string, err error) error {
	return fmt.Errorf("%w; the server stopped", c.permissionDenied("join consumer group "+group, err))
}

// causedError is a message that already says what its causes say, and
// unwraps to them.
type causedError struct {
	msg    string
	causes []error
}

func (e *causedError) Error() string   { return e.msg }
func (e *causedError) Unwrap() []error { return e.causes }
