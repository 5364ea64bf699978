package main

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// A golden case is a folder under testdata holding .proto files (their
// paths below the folder are their import paths), an optional opt.txt with
// the plugin's options, and the expected result: the generated files under
// gen/, or the plugin's exact error message in error.txt. A case with
// neither expects no output at all.
//
// The test compiles the case in-process (compileRequest: no buf needed),
// hands the plugin a CodeGeneratorRequest for every file of the case at
// once (as buf's strategy: all does) and compares its response. go test
// -update rewrites the expectations. TestGoldenCasesCompile runs buf
// generate on the same cases and checks that buf's request gives the same
// files.
func TestGolden(t *testing.T) {
	cases, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join("testdata", c.Name())
			resp := generateCase(t, dir)
			if *update {
				updateCase(t, dir, resp)
				return
			}
			checkCase(t, dir, resp)
		})
	}
}

// caseProtos returns the .proto files of a case, relative to its folder.
func caseProtos(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".proto") {
			rel, err := filepath.Rel(dir, path)
			files = append(files, filepath.ToSlash(rel))
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatalf("%s holds no .proto files", dir)
	}
	return files
}

// caseOptions returns the plugin options of a case.
func caseOptions(t testing.TB, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "opt.txt"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// caseWorkspace lays a case out as a buf workspace: its protos in one
// module, the protos it imports in another.
func caseWorkspace(t testing.TB, dir string) string {
	t.Helper()
	ws := t.TempDir()
	copyTree(t, dir, filepath.Join(ws, "proto"), func(rel string) bool { return strings.HasSuffix(rel, ".proto") })
	contractDeps(t, filepath.Join(ws, "deps"))
	writeFile(t, filepath.Join(ws, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n  - path: deps\n")
	return ws
}

// generateCase runs the plugin on the case and returns its response.
func generateCase(t *testing.T, dir string) *pluginpb.CodeGeneratorResponse {
	t.Helper()
	param := "paths=source_relative"
	if opt := caseOptions(t, dir); opt != "" {
		param += "," + opt
	}
	return respond(compileRequest(t, dir, caseProtos(t, dir), param))
}

// TestRunSpeaksThePluginProtocol feeds run, what main calls, a request as
// bytes, as buf and protoc write it to the plugin's standard input, and
// reads the response it writes: the same as respond's.
func TestRunSpeaksThePluginProtocol(t *testing.T) {
	dir := filepath.Join("testdata", "single")
	req := compileRequest(t, dir, caseProtos(t, dir), "paths=source_relative")
	in, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(bytes.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	resp := &pluginpb.CodeGeneratorResponse{}
	if err := proto.Unmarshal(out.Bytes(), resp); err != nil {
		t.Fatalf("decoding the plugin's response: %v", err)
	}
	if want := respond(req); !proto.Equal(resp, want) {
		t.Errorf("run wrote %v, respond returns %v", resp, want)
	}
	if err := run(strings.NewReader("not a request"), &out); err == nil || !strings.Contains(err.Error(), "run by buf or protoc") {
		t.Errorf("run on garbage = %v, want an error saying who runs the plugin", err)
	}
}

func updateCase(t *testing.T, dir string, resp *pluginpb.CodeGeneratorResponse) {
	for _, stale := range []string{filepath.Join(dir, "gen"), filepath.Join(dir, "error.txt")} {
		if err := os.RemoveAll(stale); err != nil {
			t.Fatal(err)
		}
	}
	if resp.Error != nil {
		writeFile(t, filepath.Join(dir, "error.txt"), resp.GetError()+"\n")
		return
	}
	for _, f := range resp.GetFile() {
		writeFile(t, filepath.Join(dir, "gen", filepath.FromSlash(f.GetName())), f.GetContent())
	}
}

func checkCase(t *testing.T, dir string, resp *pluginpb.CodeGeneratorResponse) {
	wantErr, err := os.ReadFile(filepath.Join(dir, "error.txt"))
	switch {
	case err == nil:
		if resp.Error == nil {
			t.Fatalf("the plugin succeeded; want the error in %s/error.txt:\n%s", dir, wantErr)
		}
		if got, want := resp.GetError(), strings.TrimSuffix(string(wantErr), "\n"); got != want {
			t.Fatalf("error differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", got, want)
		}
		return
	case !os.IsNotExist(err):
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatalf("plugin failed: %s", resp.GetError())
	}
	got := map[string]string{}
	for _, f := range resp.GetFile() {
		got[f.GetName()] = f.GetContent()
	}
	want := readTree(t, filepath.Join(dir, "gen"))
	for name, content := range got {
		w, ok := want[name]
		switch {
		case !ok:
			t.Errorf("the plugin wrote %s, which has no golden file (go test -update writes it)", name)
		case w != content:
			t.Errorf("%s differs from its golden file (go test -update rewrites it)\n%s", name, lineDiff(w, content))
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("the plugin did not write %s, which has a golden file", name)
		}
	}
}

// lineDiff shows the first line where want and got differ, with context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return "(same lines, different line endings)"
}
