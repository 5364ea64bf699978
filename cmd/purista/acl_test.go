package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestACLPlan prints the example system's ACLs from an image and an acl
// file, and refuses a file that names a service twice.
func TestACLPlan(t *testing.T) {
	img := image(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(good, []byte(`principals:
  - principal: User:orders
    serves: [orders.v1.OrdersService]
    calls: [users.v1.UsersService]
  - principal: User:gateway
    gateway: true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := cliWants(t, []string{"acl", "plan", "--image", img, "--acl-file", good, "--topic-prefix", "prod."},
		"prod.purista.event.orders.v1.OrderPlaced", "prod.purista.rpc.users.v1.UsersService", "prod.purista.reply.gateway-", "19 ACLs")
	if strings.Contains(out, "User:users") {
		t.Errorf("plan names a principal the file does not list:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("principals:\n  - principal: User:a\n    serves: [orders.v1.OrdersService]\n  - principal: User:b\n    serves: [orders.v1.OrdersService]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := cli(t, "acl", "plan", "--image", img, "--acl-file", bad)
	if code != 2 || !strings.Contains(stderr, "which User:a serves too") {
		t.Errorf("acl plan with a service served twice: exit %d, stderr %q; want 2 and the problem", code, stderr)
	}
	_, stderr, code = cli(t, "acl", "plan", "--image", img, "--acl-file", filepath.Join(dir, "typo.yaml"))
	if code != 2 || !strings.Contains(stderr, "--acl-file") {
		t.Errorf("acl plan with a missing file: exit %d, stderr %q", code, stderr)
	}
}
