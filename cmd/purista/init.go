package main

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/purista-go/purista"
)

// The scaffold's files are templates, not generated code: what a new
// repository starts with, the user's to change from then on. They end in
// .tmpl so that the go command does not take them for packages or modules
// of this one.
//
//go:embed all:scaffold
var scaffoldFS embed.FS

// bufVersion is the buf the scaffolded Makefiles install from npm when buf
// is not on PATH, as this repository's Makefile does.
const bufVersion = "1.75.0"

// pinned are the versions a scaffolded go.mod requires: those this
// repository builds and generates with (go.mod, tools/go.mod). A test
// checks they agree.
var pinned = pinnedVersions{
	GRPC:            "v1.85.0",
	Protobuf:        "v1.36.12",
	GRPCGateway:     "v2.33.0",
	ProtocGenGoGRPC: "v1.6.2",
}

type pinnedVersions struct {
	GRPC, Protobuf, GRPCGateway, ProtocGenGoGRPC string
}

// scaffold is what the templates are filled with.
type scaffold struct {
	Name      string // the repository's short name: library
	GoName    string // its root Go package
	Title     string // Library, for LibraryService
	Module    string // its Go module path
	Team      string // contracts: the first team's package
	TeamTitle string

	GoVersion      string
	PuristaVersion string
	PuristaPath    string
	BufVersion     string
	Versions       pinnedVersions
}

var scaffoldNameRE = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

func newInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Start a service repository or a contracts repository",
	}
	var (
		module, dir, puristaPath, team string
		noTidy                         bool
	)
	addFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&module, "module", "", "Go module path of the new repository (default example.com/<name>)")
		c.Flags().StringVar(&dir, "dir", "", "directory to create (default ./<name>)")
		c.Flags().StringVar(&puristaPath, "purista-path", "", "a local checkout of purista-go to use (a replace directive in go.mod), until the module is published")
		c.Flags().BoolVar(&noTidy, "no-tidy", false, "do not run go mod tidy (which fills go.sum for the code generators)")
	}
	service := &cobra.Command{
		Use:   "service <name>",
		Short: "Scaffold a service repository: contract, generation, service, gateway, tests",
		Long: `service creates a repository for one service, ready for "make generate" and
"make test":

  buf.yaml, buf.gen.yaml   buf v2; protoc-gen-go, -go-grpc, -grpc-gateway,
                           -openapiv2 and -purista run as Go tools pinned in go.mod
  proto/<name>/v1/         a contract with one method bound to HTTP
  internal/service/        its implementation, and a test over the in-process transport
  cmd/<name>/              the service's main, over Kafka
  cmd/gateway/             the HTTP gateway's main, serving the OpenAPI document
  api_test.go              the gateway over the in-process transport
  purista.yaml             what "purista dev" (make dev) runs
  Makefile                 generate, test, dev, lint
  scripts/fetch-protos.sh  google/api, buf/validate and purista's options from pinned Go modules

The name is lower-case letters and digits: it becomes the proto package
<name>.v1 and the Go package <name>v1.`,
		Example: "  purista init service library --module github.com/acme/library --purista-path ~/src/purista-go",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, target, err := newScaffold(args[0], module, dir, puristaPath)
			if err != nil {
				return err
			}
			s.Team, s.TeamTitle = s.Name, s.Title
			if err := s.write(target, "service", map[string]string{
				"cmd/service/":        "cmd/" + s.Name + "/",
				"proto/service.proto": "proto/" + s.Name + "/v1/" + s.Name + ".proto",
			}); err != nil {
				return err
			}
			return s.finish(cmd, target, noTidy, "make generate   # buf generate, go mod tidy\n  make test\n  make dev        # then: curl -s localhost:8080/v1/"+s.Name+"/greetings/Ada")
		},
	}
	addFlags(service)
	contracts := &cobra.Command{
		Use:   "contracts <name>",
		Short: "Scaffold a contracts repository shared by several teams",
		Long: `contracts creates the repository several teams share their contracts in: one
buf workspace with lint (STANDARD) and breaking (FILE) checks, one package
per team (proto/<team>/v1, the first one --team), and one Go module of
generated code that service repositories and gateways import, with one
merged OpenAPI document. The plugins are Go tools pinned in go.mod.`,
		Example: "  purista init contracts acme --module github.com/acme/contracts --team users --purista-path ~/src/purista-go",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, target, err := newScaffold(args[0], module, dir, puristaPath)
			if err != nil {
				return err
			}
			if !scaffoldNameRE.MatchString(team) {
				return usageError{fmt.Errorf("--team %q: use lower-case letters and digits (it becomes the proto package %s.v1)", team, team)}
			}
			s.Team, s.TeamTitle = team, strings.ToUpper(team[:1])+team[1:]
			if err := s.write(target, "contracts", nil); err != nil {
				return err
			}
			// The first team's contract is the one a service repository starts with.
			team := *s
			team.Name, team.Title = s.Team, s.TeamTitle
			if err := team.writeOne(target, "service/proto/service.proto.tmpl", "proto/"+s.Team+"/v1/"+s.Team+".proto"); err != nil {
				return err
			}
			return s.finish(cmd, target, noTidy, "make generate   # buf generate, go mod tidy\n  make test\n  make lint breaking")
		},
	}
	addFlags(contracts)
	contracts.Flags().StringVar(&team, "team", "example", "the first team's package (proto/<team>/v1)")
	cmd.AddCommand(service, contracts)
	return cmd
}

// newScaffold checks the command line and returns the template data and
// the directory to create.
func newScaffold(name, module, dir, puristaPath string) (*scaffold, string, error) {
	if !scaffoldNameRE.MatchString(name) {
		return nil, "", usageError{fmt.Errorf("name %q: use lower-case letters and digits, starting with a letter (it becomes the proto package %s.v1 and a Go package name), e.g. library", name, name)}
	}
	s := &scaffold{
		Name: name, GoName: name, Title: strings.ToUpper(name[:1]) + name[1:],
		Module: module, GoVersion: "1.26.0", PuristaVersion: "v" + purista.Version,
		BufVersion: bufVersion, Versions: pinned,
	}
	if s.Module == "" {
		s.Module = "example.com/" + name
	}
	if err := checkModulePath(s.Module); err != nil {
		return nil, "", usageError{fmt.Errorf("--module %q: %v", s.Module, err)}
	}
	if puristaPath != "" {
		abs, err := filepath.Abs(puristaPath)
		if err != nil {
			return nil, "", err
		}
		data, err := os.ReadFile(filepath.Join(abs, "go.mod"))
		if err != nil || modulePath(data) != "github.com/purista-go/purista" {
			return nil, "", usageError{fmt.Errorf("--purista-path %s is no checkout of purista-go (want a go.mod of module github.com/purista-go/purista there)", puristaPath)}
		}
		s.PuristaPath, s.PuristaVersion = abs, "v0.0.0"
	}
	if dir == "" {
		dir = name
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, "", usageError{fmt.Errorf("%s exists and is not empty: choose another --dir, or remove it", dir)}
	}
	return s, dir, nil
}

// modulePath returns the module path a go.mod declares.
func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// checkModulePath accepts what go mod init would.
func checkModulePath(p string) error {
	if strings.ContainsAny(p, " \t\\") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || !strings.Contains(p, "/") && !strings.Contains(p, ".") {
		return errors.New("write a module path such as github.com/acme/library")
	}
	return nil
}

// write renders the templates of kind and the common ones into dir.
// renames maps template path prefixes to the paths they take.
func (s *scaffold) write(dir, kind string, renames map[string]string) error {
	commons := map[string]string{
		"common/gitignore.tmpl":       ".gitignore",
		"common/buf.yaml.tmpl":        "buf.yaml",
		"common/go.mod.tmpl":          "go.mod",
		"common/fetch-protos.sh.tmpl": "scripts/fetch-protos.sh",
	}
	for src, dst := range commons {
		if err := s.writeOne(dir, src, dst); err != nil {
			return err
		}
	}
	root := "scaffold/" + kind
	return fs.WalkDir(scaffoldFS, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		if kind == "contracts" && strings.HasPrefix(rel, "proto/") {
			return nil
		}
		for from, to := range renames {
			if strings.HasPrefix(rel, from) {
				rel = to + strings.TrimPrefix(rel, from)
			}
		}
		return s.writeOne(dir, p, rel)
	})
}

// writeOne renders one template (a path below scaffold/) to dir/dst.
func (s *scaffold) writeOne(dir, src, dst string) error {
	src = strings.TrimPrefix(src, "scaffold/")
	text, err := scaffoldFS.ReadFile(path.Join("scaffold", src))
	if err != nil {
		return fmt.Errorf("the scaffold template %s is missing from this build of purista: %w", src, err)
	}
	t, err := template.New(src).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return fmt.Errorf("the scaffold template %s is broken (a bug in purista): %w", src, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, s); err != nil {
		return fmt.Errorf("the scaffold template %s is broken (a bug in purista): %w", src, err)
	}
	out := filepath.Join(dir, filepath.FromSlash(dst))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(out), err)
	}
	mode := os.FileMode(0o644)
	if strings.HasSuffix(dst, ".sh") {
		mode = 0o755
	}
	if err := os.WriteFile(out, b.Bytes(), mode); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// finish fills go.sum for the code generators and says what to do next.
func (s *scaffold) finish(cmd *cobra.Command, dir string, noTidy bool, next string) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "created %s (module %s)\n", dir, s.Module)
	if !noTidy {
		// -e: the generated packages the code imports do not exist before
		// make generate; go.sum gets what the code generators need.
		tidy := exec.Command("go", "mod", "tidy", "-e")
		tidy.Dir = dir
		tidy.Env = append(os.Environ(), "GOWORK=off")
		if msg, err := tidy.CombinedOutput(); err != nil {
			fmt.Fprintf(out, "note: go mod tidy failed (%v); run `go mod tidy -e` in %s before make generate:\n%s", err, dir, msg)
		}
	}
	if s.PuristaPath == "" {
		fmt.Fprintf(out, "note: go.mod requires github.com/purista-go/purista %s from the module proxy; until it is published there, "+
			"run purista init again with --purista-path pointing at a checkout of purista-go\n", s.PuristaVersion)
	}
	fmt.Fprintf(out, "\nnext:\n  cd %s\n  %s\n", dir, next)
	return nil
}
