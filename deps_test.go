package purista_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The runtime package is imported by every service: it must not pull in
// the HTTP gateway's dependencies. Registering routes lives in the gateway
// package and in generated code (Register<Service>HTTP) for that reason.
func TestRuntimeImportsNoGateway(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/purista-go/purista").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "grpc-gateway") || strings.HasPrefix(pkg, "github.com/purista-go/purista/gateway") {
			t.Errorf("github.com/purista-go/purista depends on %s; keep HTTP gateway code out of the runtime package", pkg)
		}
	}
}
