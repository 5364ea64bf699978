package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/purista-go/purista"
)

func TestVersionFlag(t *testing.T) {
	out, err := exec.Command(pluginBinary(t), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != purista.Version {
		t.Errorf("--version printed %q, want %q", got, purista.Version)
	}
}

func TestUnknownArgument(t *testing.T) {
	out, err := exec.Command(pluginBinary(t), "--frobnicate").CombinedOutput()
	if err == nil {
		t.Fatalf("an unknown argument succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), `unknown argument "--frobnicate"`) {
		t.Errorf("output does not name the argument:\n%s", out)
	}
}

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
		got, err := normalizeTemplate(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("normalizeTemplate(%q) error = %v, want one containing %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("normalizeTemplate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
