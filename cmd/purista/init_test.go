package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/format"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/embedded"
)

// The tests below do what a user does with a new repository: purista init,
// make generate, go test, then the CLI on its contracts. They compile a new
// module (a minute or two on 2 cores the first time) and need buf; they
// skip, saying so, only when buf cannot be found or installed.

var (
	bufOnce sync.Once
	bufPath string
	bufWhy  string
)

// testBuf returns a buf to run: $PURISTA_BUF, buf on PATH, the one `make
// tools` installs in .cache/buf, or that one installed now with npm.
func testBuf(t *testing.T) string {
	t.Helper()
	bufOnce.Do(func() {
		if p := os.Getenv("PURISTA_BUF"); p != "" {
			bufPath = p
			return
		}
		if p, err := exec.LookPath("buf"); err == nil {
			bufPath = p
			return
		}
		root, err := filepath.Abs("../..")
		if err != nil {
			bufWhy = err.Error()
			return
		}
		local := filepath.Join(root, ".cache", "buf", "node_modules", ".bin", "buf")
		if !isExecutable(local) {
			npm := exec.Command("npm", "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error",
				"--prefix", filepath.Join(root, ".cache", "buf"), "@bufbuild/buf@"+bufVersion)
			if out, err := npm.CombinedOutput(); err != nil {
				bufWhy = "buf is not on PATH and `npm install @bufbuild/buf` failed: " + err.Error() + "\n" + string(out)
				return
			}
		}
		bufPath = local
	})
	if bufPath == "" {
		t.Skipf("skipped: buf is needed to generate the new repository's code and cannot be installed (%s); run `make tools` or put buf on PATH", bufWhy)
	}
	return bufPath
}

// run runs a command in dir and fails the test with its output on error.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"GOWORK=off"}, env...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// cliIn runs this binary as purista in dir, as a user runs it there.
func cliIn(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{asCLI + "=1"}, env...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// newRepo scaffolds a repository of kind (service or contracts) named name
// in a temporary directory with this checkout as purista, and runs make
// generate and go test there.
func newRepo(t *testing.T, buf, kind, name string, extra ...string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), name)
	args := append([]string{"init", kind, name, "--dir", dir, "--purista-path", root}, extra...)
	if out, code := cliIn(t, ".", nil, args...); code != 0 || !strings.Contains(out, "created "+dir) {
		t.Fatalf("purista %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	runIn(t, dir, nil, "make", "generate", "BUF="+buf)
	runIn(t, dir, nil, "go", "vet", "./...")
	out := runIn(t, dir, nil, "go", "test", "./...")
	t.Logf("go test ./... of the new repository:\n%s", out)
	return dir
}

// TestInitService is the path of a new service team: purista init service
// library, make generate, go test ./..., then routes, topics and dev on the
// new repository's contracts — its, and none of the example system's.
func TestInitService(t *testing.T) {
	buf := testBuf(t)
	repo := newRepo(t, buf, "service", "library")
	env := []string{"PURISTA_BUF=" + buf}

	out, code := cliIn(t, repo, env, "routes")
	if code != 0 || !strings.Contains(out, "GET   /v1/library/greetings/{name}  library.v1.LibraryService/Greet  purista.rpc.library.v1.LibraryService  5s       yes") ||
		strings.Count(out, "\n") != 2 {
		t.Errorf("purista routes in the new repository: exit %d, want its one route:\n%s", code, out)
	}

	b, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := strings.Join(b.Addrs(), ",")
	out, code = cliIn(t, repo, env, "topics", "plan", "--brokers", addr)
	if code != 0 || !strings.Contains(out, "purista.rpc.library.v1.LibraryService      3           default      -                                                    create") {
		t.Errorf("purista topics plan: exit %d\n%s", code, out)
	}
	out, code = cliIn(t, repo, env, "topics", "ensure", "--brokers", addr)
	if code != 0 || !strings.Contains(out, "purista.rpc.library.v1.LibraryService      3           created") ||
		!strings.Contains(out, "2 topics: 2 created, 0 already existed") {
		t.Errorf("purista topics ensure: exit %d\n%s", code, out)
	}
	kc := &kafkago.Client{Addr: kafkago.TCP(b.Addrs()...), Timeout: 10 * time.Second}
	meta, err := kc.Metadata(context.Background(), &kafkago.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, tp := range meta.Topics {
		topics = append(topics, tp.Name)
	}
	sort.Strings(topics)
	if len(topics) != 2 || topics[0] != "purista.replies.library.v1.LibraryService" || topics[1] != "purista.rpc.library.v1.LibraryService" {
		t.Errorf("the broker has the topics %v, want only the library's request topic and reply store", topics)
	}
	out, code = cliIn(t, repo, env, "topics", "plan", "--brokers", addr)
	if code != 0 || !strings.Contains(out, "exists, unchanged") {
		t.Errorf("purista topics plan after ensure: exit %d\n%s", code, out)
	}

	// purista dev serves the new repository's route over HTTP.
	t.Setenv("PURISTA_BUF", buf)
	p := startDev(t, repo, "Ctrl-C stops everything")
	m := readyRE.FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no ready line:\n%s", p.output())
	}
	resp, err := http.Get(m[2] + "/v1/library/greetings/Ada")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var reply struct{ Greeting string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &reply) != nil || reply.Greeting != "Hello, Ada!" {
		t.Errorf("GET /v1/library/greetings/Ada through purista dev: %d %s", resp.StatusCode, body)
	}
	out = p.output()
	if !strings.Contains(out, "created purista.rpc.library.v1.LibraryService") || strings.Contains(out, "users.v1") {
		t.Errorf("purista dev provisioned other topics than the library's:\n%s", out)
	}
	p.interrupt(t)
}

// TestInitContracts: a contracts repository generates one Go module, and
// its gateway test builds the routes of every team.
func TestInitContracts(t *testing.T) {
	buf := testBuf(t)
	repo := newRepo(t, buf, "contracts", "acme", "--team", "users", "--module", "github.com/acme/contracts")
	if _, err := os.Stat(filepath.Join(repo, "gen", "users", "v1", "users.purista.go")); err != nil {
		t.Errorf("no generated users.purista.go: %v", err)
	}
	runIn(t, repo, nil, buf, "lint")
	out, code := cliIn(t, repo, []string{"PURISTA_BUF=" + buf}, "routes")
	if code != 0 || !strings.Contains(out, "/v1/users/greetings/{name}") {
		t.Errorf("purista routes in the contracts repository: exit %d\n%s", code, out)
	}
}

// TestNoExampleLinked: the CLI works on the user's contracts only; nothing
// of the example system is compiled into it.
func TestNoExampleLinked(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/examples/") || strings.HasSuffix(pkg, "/examples") {
			t.Errorf("purista links %s", pkg)
		}
	}
}

// TestPinnedVersions: a new repository requires the versions this one
// builds and generates with.
func TestPinnedVersions(t *testing.T) {
	mods := map[string]string{}
	for _, f := range []string{"../../go.mod", "../../tools/go.mod"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if fs := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require ")); len(fs) >= 2 {
				if _, ok := mods[fs[0]]; !ok || f == "../../go.mod" {
					mods[fs[0]] = fs[1]
				}
			}
		}
	}
	for mod, want := range map[string]string{
		"google.golang.org/grpc":                        pinned.GRPC,
		"google.golang.org/protobuf":                    pinned.Protobuf,
		"github.com/grpc-ecosystem/grpc-gateway/v2":     pinned.GRPCGateway,
		"google.golang.org/grpc/cmd/protoc-gen-go-grpc": pinned.ProtocGenGoGRPC,
	} {
		if mods[mod] != want {
			t.Errorf("%s: the scaffold pins %s, this repository uses %s: update pinned in init.go", mod, want, mods[mod])
		}
	}
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "BUF_VERSION := "+bufVersion+"\n") {
		t.Errorf("bufVersion %s differs from the Makefile's BUF_VERSION", bufVersion)
	}
}

// TestScaffoldFormatted: the Go files purista init writes are gofmt's
// output, for any name, so a new repository starts clean under make lint.
func TestScaffoldFormatted(t *testing.T) {
	for _, args := range [][]string{
		{"init", "service", "shop", "--no-tidy"},
		{"init", "contracts", "acme", "--team", "users", "--no-tidy"},
	} {
		dir := filepath.Join(t.TempDir(), args[2])
		if _, stderr, code := cli(t, append(args, "--dir", dir)...); code != 0 {
			t.Fatalf("purista %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			formatted, err := format.Source(src)
			if err != nil {
				return fmt.Errorf("%s: %v", path, err)
			}
			if !bytes.Equal(src, formatted) {
				t.Errorf("%s is not gofmt'd:\n%s", path, src)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
