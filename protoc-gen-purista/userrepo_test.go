package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUserRepo is what a service team does: a new repository outside this
// module, with its own go.mod, proto and buf.gen.yaml, runs buf generate
// with protoc-gen-purista, builds, and serves a call through the
// generated code over the Kafka transport on the embedded broker. The files
// are in testdata/userrepo.txtar.
func TestUserRepo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module; skipped with -short")
	}
	buf, plugin, tools := bufBinary(t), pluginBinary(t), codegenTools(t)
	root := repoRoot(t)
	repo := t.TempDir()

	archive, err := os.ReadFile(filepath.Join("testdata", "userrepo.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	files := parseTxtar(string(archive))
	if len(files) == 0 {
		t.Fatal("testdata/userrepo.txtar holds no files")
	}
	for name, content := range files {
		content = strings.NewReplacer("@TOOLS@", tools, "@PLUGIN@", plugin).Replace(content)
		writeFile(t, filepath.Join(repo, filepath.FromSlash(name)), content)
	}
	newUserModule(t, repo, "example.com/shop", root)

	// The contract options come with the purista module, where the go
	// command put it; google/api with the googleapis protos.
	dir := strings.TrimSpace(mustRun(t, repo, goEnv(), "go", "list", "-m", "-f", "{{.Dir}}", "github.com/purista-go/purista"))
	if err := copyFile(filepath.Join(dir, "proto", "purista", "v1", "options.proto"),
		filepath.Join(repo, "third_party", "purista", "v1", "options.proto")); err != nil {
		t.Fatal(err)
	}
	copyTree(t, googleapisDir(t), filepath.Join(repo, "third_party"), func(rel string) bool { return strings.HasSuffix(rel, ".proto") })

	mustRun(t, repo, nil, buf, "generate")
	if _, err := os.Stat(filepath.Join(repo, "gen", "shop", "v1", "shop.purista.go")); err != nil {
		t.Fatalf("buf generate wrote no shop.purista.go: %v", err)
	}
	mustRun(t, repo, goEnv(), "go", "vet", "./...")
	mustRun(t, repo, goEnv(), "go", "build", "-o", "shop", ".")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "shop"))
	cmd.Dir = repo
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running the user's program: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	t.Logf("the user's program logged:\n%s", stderr.String())
	want := "placed order-1 for c-42\n" +
		"request topic purista.rpc.shop.v1.OrdersService, key c-42, timeout 5s, event shop.v1.OrderPlaced\n" +
		"event shop.v1.OrderPlaced on purista.event.shop.v1.OrderPlaced, key c-42: order-1\n"
	if string(out) != want {
		t.Errorf("the user's program printed:\n%s\nwant:\n%s", out, want)
	}
}

// parseTxtar returns the files of a txtar archive: each starts at a line
// "-- name --" and runs to the next one; the text before the first is a
// comment.
func parseTxtar(s string) map[string]string {
	files := map[string]string{}
	var name string
	var body strings.Builder
	flush := func() {
		if name != "" {
			files[name] = body.String()
		}
		body.Reset()
	}
	for _, line := range strings.SplitAfter(s, "\n") {
		trimmed := strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) > 6 {
			flush()
			name = strings.TrimSpace(trimmed[3 : len(trimmed)-3])
			continue
		}
		body.WriteString(line)
	}
	flush()
	return files
}
