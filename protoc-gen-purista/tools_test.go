package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The tests run the real plugin binary through buf, the way users run it.
// buf and the googleapis protos are fetched by the Makefile (and CI); when
// they are missing the tests that need them skip, unless
// PURISTA_REQUIRE_TOOLS is set, as it is in CI, where they fail instead.

var binDir string // holds the plugin binary built for this test run

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "protoc-gen-purista-test")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot returns the absolute path of the module's root directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// missingTool skips the test, or fails it when PURISTA_REQUIRE_TOOLS is set.
func missingTool(t testing.TB, what, fix string) {
	t.Helper()
	if os.Getenv("PURISTA_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s is missing: %s", what, fix)
	}
	t.Skipf("%s is missing (%s); set PURISTA_REQUIRE_TOOLS=1 to fail instead of skipping", what, fix)
}

// bufBinary returns the buf binary pinned by the repository, or $PURISTA_BUF.
func bufBinary(t testing.TB) string {
	t.Helper()
	path := os.Getenv("PURISTA_BUF")
	if path == "" {
		path = filepath.Join(repoRoot(t), ".cache", "buf", "node_modules", ".bin", "buf")
	}
	if _, err := os.Stat(path); err != nil {
		missingTool(t, "buf ("+path+")",
			"install it with: npm install --no-save --no-audit --no-fund --prefix .cache/buf @bufbuild/buf@1.75.0")
	}
	return path
}

// googleapisDir returns the directory holding google/api/annotations.proto.
func googleapisDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "third_party", "googleapis")
	if _, err := os.Stat(filepath.Join(dir, "google", "api", "annotations.proto")); err != nil {
		missingTool(t, "google/api protos ("+dir+")", "fetch them with: scripts/fetch-googleapis.sh")
	}
	return dir
}

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
)

// pluginBinary builds protoc-gen-purista once per test run and returns its path.
func pluginBinary(t testing.TB) string {
	t.Helper()
	path := filepath.Join(binDir, "protoc-gen-purista")
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", path, ".")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building protoc-gen-purista: %v\n%s", buildErr, buildOut)
	}
	return path
}

var (
	toolsOnce sync.Once
	toolsErr  error
	toolsOut  []byte
)

// codegenTools builds protoc-gen-go, protoc-gen-go-grpc and
// protoc-gen-grpc-gateway at the versions pinned by tools/go.mod, once per
// test run, and returns the directory holding them.
func codegenTools(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(binDir, "tools")
	toolsOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"google.golang.org/protobuf/cmd/protoc-gen-go",
			"google.golang.org/grpc/cmd/protoc-gen-go-grpc",
			"github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway")
		cmd.Dir = filepath.Join(repoRoot(t), "tools")
		toolsOut, toolsErr = cmd.CombinedOutput()
	})
	if toolsErr != nil {
		t.Fatalf("building the code generators of tools/go.mod: %v\n%s", toolsErr, toolsOut)
	}
	return dir
}

// mustRun runs a command in dir and fails the test with its output on error.
func mustRun(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return out
}

func runErr(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// copyTree copies the files below src whose names keep returns true to dst.
func copyTree(t testing.TB, src, dst string, keep func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || !keep(filepath.ToSlash(rel)) {
			return err
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readTree returns the contents of the files below dir by their slash
// separated paths relative to dir; none when dir does not exist.
func readTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) && path == dir {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// contractDeps copies the protos every contract imports, options.proto and
// google/api, into dir.
func contractDeps(t testing.TB, dir string) {
	t.Helper()
	root := repoRoot(t)
	if err := copyFile(filepath.Join(root, "proto", "purista", "v1", "options.proto"),
		filepath.Join(dir, "purista", "v1", "options.proto")); err != nil {
		t.Fatal(err)
	}
	copyTree(t, googleapisDir(t), dir, func(rel string) bool { return strings.HasSuffix(rel, ".proto") })
}
