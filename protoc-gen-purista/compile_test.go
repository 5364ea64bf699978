package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGoldenCasesCompile generates every golden case that succeeds with
// buf generate, next to the output of protoc-gen-go, protoc-gen-go-grpc and
// protoc-gen-grpc-gateway, and compiles and vets the result: the golden
// files must be code that builds, not only text that matches.
func TestGoldenCasesCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles generated code; skipped with -short")
	}
	buf, plugin, tools := bufBinary(t), pluginBinary(t), codegenTools(t)
	root := repoRoot(t)
	const module = "example.com/gentest"
	mod := t.TempDir()
	newUserModule(t, mod, module, root)

	cases, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var compiled int
	for _, c := range cases {
		dir := filepath.Join("testdata", c.Name())
		if _, err := os.Stat(filepath.Join(dir, "error.txt")); err == nil || !c.IsDir() {
			continue
		}
		ws := caseWorkspace(t, dir)
		opt := "module=" + module
		pluginOpt := opt
		if o := caseOptions(t, dir); o != "" {
			pluginOpt += "," + o
		}
		writeFile(t, filepath.Join(ws, "buf.gen.yaml"), genTemplate(tools, plugin, mod, opt, pluginOpt))
		mustRun(t, ws, nil, buf, "generate")
		compiled++
		// buf's own request must give what the golden test's request gives.
		if got, want := puristaFiles(readTree(t, filepath.Join(mod, c.Name()))), puristaFiles(readTree(t, filepath.Join(dir, "gen"))); !slices.Equal(got, want) {
			t.Errorf("%s: buf generate wrote other .purista.go files than the golden ones (go_package must start with %s/%s)", c.Name(), module, c.Name())
		}
	}
	if compiled == 0 {
		t.Fatal("no golden case to compile")
	}
	if _, err := os.Stat(filepath.Join(mod, "go.mod")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, mod, goEnv(), "go", "vet", "./...")
	t.Logf("compiled and vetted:\n%s", mustRun(t, mod, goEnv(), "go", "list", "./..."))
}

// puristaFiles returns the sorted contents of the .purista.go files of a tree.
func puristaFiles(tree map[string]string) []string {
	var out []string
	for name, content := range tree {
		if strings.HasSuffix(name, ".purista.go") {
			out = append(out, content)
		}
	}
	slices.Sort(out)
	return out
}

// genTemplate returns a buf.gen.yaml that runs the Go, gRPC and
// grpc-gateway plugins found in tools and the plugin binary under test, all
// writing to out.
func genTemplate(tools, plugin, out, opt, pluginOpt string) string {
	tool := func(name string) string {
		return fmt.Sprintf("  - local: %q\n    out: %s\n    opt: %s\n", filepath.Join(tools, name), out, opt)
	}
	return "version: v2\nplugins:\n" +
		tool("protoc-gen-go") + tool("protoc-gen-go-grpc") + tool("protoc-gen-grpc-gateway") +
		fmt.Sprintf("  - local: %q\n    out: %s\n    opt: %s\n    strategy: all\n", plugin, out, pluginOpt) +
		"inputs:\n  - directory: proto\n"
}

// newUserModule writes the go.mod of a module outside this repository that
// requires github.com/purista-go/purista from the local checkout, with the
// checkout's go.sum so the module cache is enough to build it.
func newUserModule(t testing.TB, dir, module, root string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "go.mod"), fmt.Sprintf(
		"module %s\n\ngo 1.26.0\n\nrequire github.com/purista-go/purista v0.0.0\n\nreplace github.com/purista-go/purista => %s\n",
		module, root))
	if err := copyFile(filepath.Join(root, "go.sum"), filepath.Join(dir, "go.sum")); err != nil {
		t.Fatal(err)
	}
}

// goEnv is the environment for go commands in a user module: missing
// requirements are added from the module cache or GOPROXY (whatever the
// environment sets), and no go.work of the caller applies.
func goEnv() []string {
	flags := strings.TrimSpace(os.Getenv("GOFLAGS") + " -mod=mod")
	return []string{"GOFLAGS=" + flags, "GOWORK=off"}
}
