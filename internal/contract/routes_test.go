package contract

import (
	"strings"
	"testing"
)

func TestNormalizeTemplate(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "/v1/users/{id}", want: "/v1/users/*"},
		{in: "/v1/users/{user_id}", want: "/v1/users/*"},
		{in: "/v1/{name=users/*}", want: "/v1/users/*"},
		{in: "/v1/{name=users/*/books/**}:read", want: "/v1/users/*/books/**:read"},
		{in: "/v1/users/{id}:cancel", want: "/v1/users/*:cancel"},
		{in: "v1/users", err: "starts with"},
		{in: "/v1/{id", err: "not closed"},
		{in: "/v1/id}", err: "closes no variable"},
		{in: "/v1/{=x}", err: "no field name"},
	} {
		got, err := NormalizeTemplate(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("NormalizeTemplate(%q) error = %v, want one containing %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("NormalizeTemplate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
