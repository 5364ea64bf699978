package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Authenticator decides whether a request may call its route. The gateway
// calls it after routing and before reading the body, for every route that
// is not public.
//
// On success it returns the context the call continues with, derived from
// r.Context() (or nil to keep that context). Outgoing gRPC metadata the
// Authenticator puts on it with metadata.AppendToOutgoingContext or
// metadata.NewOutgoingContext reaches the service and replaces any value a
// client sent under the same key, so it is the place to pass a verified
// identity on.
//
// An error with a gRPC status is answered with its mapped HTTP status
// (Unauthenticated 401, PermissionDenied 403, ...); any other error with 401.
type Authenticator interface {
	Authenticate(r *http.Request, route Route) (context.Context, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request, route Route) (context.Context, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request, route Route) (context.Context, error) {
	return f(r, route)
}

// BearerAuth is an Authenticator for "Authorization: Bearer <token>". It
// answers 401 with a "WWW-Authenticate: Bearer" challenge when the header is
// missing or not a bearer token, and otherwise asks verify, which returns
// the context to continue with or an error (a status error with
// PermissionDenied for a valid token without access to the route).
func BearerAuth(realm string, verify func(ctx context.Context, token string, route Route) (context.Context, error)) Authenticator {
	challenge := bearerChallenge(realm, "")
	return AuthenticatorFunc(func(r *http.Request, route Route) (context.Context, error) {
		h := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(h, " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			msg := "missing bearer token: send an Authorization: Bearer <token> header"
			if h != "" {
				msg = "the Authorization header is not a bearer token: send Authorization: Bearer <token>"
			}
			return nil, &AuthError{Status: status.New(codes.Unauthenticated, msg), Challenge: challenge}
		}
		ctx, err := verify(r.Context(), token, route)
		if err != nil {
			if st, ok := status.FromError(err); ok && st.Code() == codes.Unauthenticated {
				return nil, &AuthError{Status: st, Challenge: bearerChallenge(realm, `error="invalid_token"`)}
			}
			return nil, err
		}
		return ctx, nil
	})
}

// bearerChallenge is a Bearer challenge (RFC 6750 section 3): the scheme,
// then the realm and param, comma-separated.
func bearerChallenge(realm, param string) string {
	var params []string
	if realm != "" {
		params = append(params, `realm="`+realm+`"`)
	}
	if param != "" {
		params = append(params, param)
	}
	if len(params) == 0 {
		return "Bearer"
	}
	return "Bearer " + strings.Join(params, ", ")
}

// AuthError is an authentication failure with the challenge the gateway
// returns in the WWW-Authenticate header.
type AuthError struct {
	Status    *status.Status
	Challenge string
}

func (e *AuthError) Error() string { return e.Status.Message() }

// GRPCStatus makes status.FromError and the gateway see the status.
func (e *AuthError) GRPCStatus() *status.Status { return e.Status }

// authStatus turns an Authenticator error into the status the client gets
// and the challenge to send, if any.
func authStatus(err error) (*status.Status, string) {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Status, ae.Challenge
	}
	if st, ok := status.FromError(err); ok {
		return st, ""
	}
	return status.New(codes.Unauthenticated, err.Error()), ""
}
