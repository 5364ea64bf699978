package tutorial

import (
	"bufio"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// snippet is a fenced block of README.md announced by a
// "<!-- tutorial: <directive> -->" comment.
type snippet struct {
	directive string
	body      string
}

var snippetRE = regexp.MustCompile("(?s)<!-- tutorial: (.+?) -->\n```[a-z]*\n(.*?)```")

func readSnippets(t *testing.T, readme string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range snippetRE.FindAllStringSubmatch(string(data), -1) {
		if _, dup := out[m[1]]; dup {
			t.Fatalf("README.md: two snippets for %q", m[1])
		}
		out[m[1]] = m[2]
	}
	return out
}

func must(t *testing.T, snippets map[string]string, directive string) string {
	t.Helper()
	s, ok := snippets[directive]
	if !ok {
		t.Fatalf("README.md has no snippet <!-- tutorial: %s -->; the tutorial and this test must change together", directive)
	}
	return s
}

// missing skips the test when a tool is missing, unless CI requires them.
func missing(t *testing.T, what, fix string) {
	t.Helper()
	if os.Getenv("PURISTA_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s is missing: %s", what, fix)
	}
	t.Skipf("%s is missing (%s); set PURISTA_REQUIRE_TOOLS=1 to fail instead", what, fix)
}

func TestTutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerates and builds the CLI; skipped with -short")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	buf := os.Getenv("PURISTA_BUF")
	if buf == "" {
		buf = filepath.Join(root, ".cache", "buf", "node_modules", ".bin", "buf")
	}
	if _, err := os.Stat(buf); err != nil {
		missing(t, "buf ("+buf+")", "run make tools")
	}
	googleapis := filepath.Join(root, "third_party", "googleapis")
	if _, err := os.Stat(filepath.Join(googleapis, "google", "api", "annotations.proto")); err != nil {
		missing(t, "the google/api protos", "run make tools")
	}
	protovalidate := filepath.Join(root, "third_party", "protovalidate")
	if _, err := os.Stat(filepath.Join(protovalidate, "buf", "validate", "validate.proto")); err != nil {
		missing(t, "buf/validate/validate.proto", "run make tools")
	}
	snippets := readSnippets(t, filepath.Join(root, "README.md"))
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	contracts := filepath.Join(root, "examples", "contracts")

	// The contracts as they are, and the copy the tutorial edits.
	orig, edited := filepath.Join(work, "orig"), filepath.Join(work, "contracts")
	for _, dir := range []string{orig, edited} {
		copyTree(t, contracts, dir, func(rel string) bool {
			return rel == "buf.yaml" || rel == "buf.gen.yaml" || strings.HasPrefix(rel, "proto/") || strings.HasPrefix(rel, "third_party/purista/")
		})
		copyTree(t, googleapis, filepath.Join(dir, "third_party"), func(rel string) bool { return strings.HasPrefix(rel, "google/api/") })
		copyTree(t, protovalidate, filepath.Join(dir, "third_party"), func(rel string) bool { return strings.HasPrefix(rel, "buf/validate/") })
	}

	// Step 1: the README's method and messages go into the contract.
	for directive, body := range snippets {
		rel, ok := strings.CutPrefix(directive, "append to examples/contracts/")
		if ok {
			appendFile(t, filepath.Join(edited, rel), "\n"+body)
			continue
		}
		if rest, ok := strings.CutPrefix(directive, "add to service "); ok {
			svc, file, ok := strings.Cut(rest, " in examples/contracts/")
			if !ok {
				t.Fatalf("README.md: directive %q: want add to service <Name> in examples/contracts/<file>", directive)
			}
			insertIntoService(t, filepath.Join(edited, file), svc, body)
		}
	}
	must(t, snippets, "add to service UsersService in examples/contracts/proto/users/v1/users.proto")
	must(t, snippets, "append to examples/contracts/proto/users/v1/users.proto")

	// Step 2: generate with the real plugins, as make generate does: the
	// contracts' own buf.gen.yaml, with the plugins built from this
	// checkout instead of `go tool` and `go run` relative to it.
	buildPlugins(t, root, bin)
	rewriteBufGen(t, filepath.Join(edited, "buf.gen.yaml"), bin)
	run(t, edited, nil, buf, "lint")
	run(t, edited, nil, buf, "breaking", "--against", orig)
	run(t, edited, nil, buf, "generate")
	overlay := map[string]string{}
	err = filepath.WalkDir(filepath.Join(edited, "gen"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(edited, path)
		if _, err := os.Stat(filepath.Join(contracts, rel)); err != nil {
			t.Errorf("buf generate wrote %s, which the repository does not have: the overlay cannot add it", rel)
		}
		overlay[filepath.Join(contracts, rel)] = path
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`FullMethod: +"/users.v1.UsersService/DeleteUser"`).MatchString(readFile(t, filepath.Join(edited, "gen", "users", "v1", "users.purista.go"))) {
		t.Fatal("the regenerated users.purista.go does not describe DeleteUser")
	}

	// Before the method is written the route exists and answers 501.
	// The CLI reads the contracts the tutorial edited, as it reads a
	// user's; purista dev builds the example's processes with the overlay
	// (go build takes it from GOFLAGS).
	env := []string{"PURISTA_BUF=" + buf}
	before, beforeOverlay := build(t, root, work, "before", overlay)
	routes := run(t, filepath.Join(root, "examples"), env, before, "routes", "--contracts", edited)
	if !regexp.MustCompile(`DELETE +/v1/users/\{user_id\} +users.v1.UsersService/DeleteUser +purista.rpc.users.v1.UsersService +2s`).MatchString(routes) {
		t.Errorf("purista routes does not list the new route:\n%s", routes)
	}
	curls(t, before, dev(root, edited, beforeOverlay, env), must(t, snippets, "http before implementing"))

	// Step 3: the README's implementation.
	const implPath = "examples/services/users/usersvc/delete.go"
	impl := filepath.Join(work, "delete.go")
	writeFile(t, impl, must(t, snippets, "create "+implPath))
	overlay[filepath.Join(root, filepath.FromSlash(implPath))] = impl

	// Step 4: make demo and the README's curl commands.
	after, afterOverlay := build(t, root, work, "after", overlay)
	curls(t, after, dev(root, edited, afterOverlay, env), must(t, snippets, "http after implementing"))
}

// insertIntoService puts body before the closing brace of the service.
func insertIntoService(t *testing.T, file, service, body string) {
	t.Helper()
	src := readFile(t, file)
	start := strings.Index(src, "service "+service+" {")
	if start < 0 {
		t.Fatalf("%s has no service %s", file, service)
	}
	depth := 0
	for i := start; i < len(src); i++ {
		switch src[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				writeFile(t, file, src[:i]+"\n"+body+src[i:])
				return
			}
		}
	}
	t.Fatalf("%s: service %s has no closing brace", file, service)
}

var goTool = regexp.MustCompile(`\["go", "tool", "-modfile=\.\./\.\./tools/go\.mod", "([a-z0-9-]+)"\]`)

// rewriteBufGen points the plugins of buf.gen.yaml at the binaries in bin.
func rewriteBufGen(t *testing.T, file, bin string) {
	t.Helper()
	s := goTool.ReplaceAllString(readFile(t, file), filepath.Join(bin, "$1"))
	s = strings.ReplaceAll(s, `["go", "run", "../../protoc-gen-purista"]`, filepath.Join(bin, "protoc-gen-purista"))
	if strings.Contains(s, `"go"`) {
		t.Fatalf("%s names a plugin this test does not know how to build:\n%s", file, s)
	}
	writeFile(t, file, s)
}

func buildPlugins(t *testing.T, root, bin string) {
	t.Helper()
	run(t, filepath.Join(root, "tools"), nil, "go", "build", "-o", bin+string(filepath.Separator),
		"google.golang.org/protobuf/cmd/protoc-gen-go",
		"google.golang.org/grpc/cmd/protoc-gen-go-grpc",
		"github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway",
		"github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2")
	run(t, root, nil, "go", "build", "-o", filepath.Join(bin, "protoc-gen-purista"), "./protoc-gen-purista")
}

// build compiles the purista CLI from this checkout with the overlay's
// files in place of (or next to) the repository's, which keeps every
// other package's build cached, and returns it and the overlay file.
func build(t *testing.T, root, work, name string, overlay map[string]string) (string, string) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(work, name+"-overlay.json")
	writeFile(t, ov, string(data))
	out := filepath.Join(work, "purista-"+name)
	run(t, root, nil, "go", "build", "-overlay", ov, "-o", out, "./cmd/purista")
	return out, ov
}

// devRun is how `purista dev --demo` runs the example system in examples/
// with the tutorial's contracts and code.
type devRun struct {
	dir  string
	args []string
	env  []string
}

func dev(root, contracts, overlay string, env []string) devRun {
	return devRun{
		dir:  filepath.Join(root, "examples"),
		args: []string{"--contracts", contracts},
		env:  append([]string{"GOFLAGS=" + strings.TrimSpace(os.Getenv("GOFLAGS")+" -overlay="+overlay)}, env...),
	}
}

// curls starts `purista dev --demo` (make demo) and runs the curl
// commands of a README block against it, checking each "# → <status>".
// The user id of the README's example is replaced by the one the service
// assigned.
func curls(t *testing.T, purista string, d devRun, block string) {
	t.Helper()
	base, stop := startDev(t, purista, d)
	defer stop()
	const exampleID = "u-5d2f8a10"
	id := exampleID
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		cmdline, expect, ok := strings.Cut(line, "# → ")
		if !ok {
			t.Fatalf("README.md: tutorial line %q has no `# → <status>`", line)
		}
		want, err := strconv.Atoi(strings.Fields(expect)[0])
		if err != nil {
			t.Fatalf("README.md: tutorial line %q: the status after → is no number", line)
		}
		method, url, body := parseCurl(t, strings.ReplaceAll(cmdline, exampleID, id))
		url = strings.Replace(url, "localhost:8080", strings.TrimPrefix(base, "http://"), 1)
		if !strings.HasPrefix(url, "http://") {
			url = "http://" + url
		}
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		reply, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("%s %s %s → %d %s", method, url, body, resp.StatusCode, reply)
		if resp.StatusCode != want {
			t.Errorf("README.md: %q answered %d %s, the README says %d", strings.TrimSpace(cmdline), resp.StatusCode, reply, want)
		}
		var r struct {
			User struct {
				UserID string `json:"userId"`
			} `json:"user"`
		}
		if json.Unmarshal(reply, &r) == nil && r.User.UserID != "" {
			id = r.User.UserID
		}
	}
}

// parseCurl reads "curl -s [-X VERB] URL [-d 'body']".
func parseCurl(t *testing.T, line string) (method, url, body string) {
	t.Helper()
	words := shellWords(t, line)
	if len(words) == 0 || words[0] != "curl" {
		t.Fatalf("README.md: tutorial line %q is not a curl command", line)
	}
	method = http.MethodGet
	explicit := false
	for i := 1; i < len(words); i++ {
		switch w := words[i]; {
		case w == "-s":
		case w == "-X" && i+1 < len(words):
			method, explicit = words[i+1], true
			i++
		case w == "-d" && i+1 < len(words):
			body = words[i+1]
			if !explicit {
				method = http.MethodPost
			}
			i++
		case strings.HasPrefix(w, "-"):
			t.Fatalf("README.md: tutorial line %q: this test does not know curl option %s", line, w)
		default:
			url = w
		}
	}
	return method, url, body
}

func shellWords(t *testing.T, s string) []string {
	var words []string
	var cur strings.Builder
	in, quoted := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			in, quoted = !in, true
		case r == ' ' && !in:
			if cur.Len() > 0 || quoted {
				words = append(words, cur.String())
			}
			cur.Reset()
			quoted = false
		default:
			cur.WriteRune(r)
		}
	}
	if in {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if cur.Len() > 0 || quoted {
		words = append(words, cur.String())
	}
	return words
}

var readyRE = regexp.MustCompile(`purista dev: ready in [0-9.]+s — gateway (http://[^,]+),`)

// startDev runs `purista dev --demo` on free ports until the demo is done
// and returns the gateway's URL and a function that stops it with Ctrl-C.
func startDev(t *testing.T, purista string, d devRun) (string, func()) {
	t.Helper()
	cmd := exec.Command(purista, append([]string{"dev", "--demo", "--http", "127.0.0.1:0", "--broker-port", "0"}, d.args...)...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), d.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	done := make(chan struct{})
	running := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		base := ""
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				base = m[1]
			}
			if strings.Contains(sc.Text(), "Ctrl-C stops everything") {
				running <- base
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(done)
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	var base string
	select {
	case base = <-running:
	case <-done:
		t.Fatalf("purista dev exited:\n%s", output())
	case <-time.After(5 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("purista dev was not running after 5 minutes:\n%s", output())
	}
	return base, func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("purista dev did not stop within 30s of Ctrl-C")
		}
		if t.Failed() {
			t.Logf("purista dev:\n%s", output())
		}
	}
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

func copyTree(t *testing.T, src, dst string, keep func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || !keep(filepath.ToSlash(rel)) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return writeFileErr(filepath.Join(dst, rel), string(data))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := writeFileErr(path, content); err != nil {
		t.Fatal(err)
	}
}

func writeFileErr(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	writeFile(t, path, readFile(t, path)+content)
}
