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
