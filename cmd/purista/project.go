package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/purista-go/purista/internal/acl"
)

// projectFileName is the file that tells `purista dev` (and the other
// commands, for the contracts) what makes the user's system.
const projectFileName = "purista.yaml"

// project is purista.yaml:
//
//	contracts: proto            # directory of the contracts' buf.yaml (default: this directory)
//	processes:
//	  - name: gateway
//	    package: ./cmd/gateway  # a Go main package, built before anything starts
//	    http: true              # serves HTTP on $PURISTA_HTTP_ADDR; ready when /healthz answers
//	  - name: library
//	    package: ./cmd/library
//	    ops: true               # serves /readyz on $PURISTA_OPS_ADDR; ready when it answers 200
//	  - name: seed
//	    command: [./scripts/seed.sh]
//	    once: true              # runs to its end; only a failure stops the system
type project struct {
	// Contracts is the directory of the contracts' buf.yaml, relative to
	// the project file; Image a prebuilt image instead.
	Contracts string `yaml:"contracts"`
	Image     string `yaml:"image"`
	// Broker false runs no embedded broker (a system on the in-process
	// transport); default true.
	Broker    *bool     `yaml:"broker"`
	Processes []process `yaml:"processes"`
	// ACL lists the Kafka principals `purista acl` derives ACLs for
	// (docs/security.md).
	ACL *acl.Config `yaml:"acl"`

	dir string
}

// process is one program of the system.
type process struct {
	Name    string            `yaml:"name"`
	Package string            `yaml:"package"`
	Command []string          `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	// HTTP marks the gateway (or any HTTP server): it gets
	// PURISTA_HTTP_ADDR, and the system is ready once its /healthz answers.
	HTTP bool `yaml:"http"`
	// Ops marks a process that serves /readyz on PURISTA_OPS_ADDR.
	Ops bool `yaml:"ops"`
	// Once marks a process that ends on its own; Demo one started only by
	// `purista dev --demo` (a driver sending example requests).
	Once bool `yaml:"once"`
	Demo bool `yaml:"demo"`
	// Raw shows its output as it is, not prefixed: a transcript to copy from.
	Raw bool `yaml:"raw"`
	// Delay starts it this long after the process before it.
	Delay string `yaml:"delay"`

	delay time.Duration
}

var processNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// readProjectFile reads dir/purista.yaml; the error wraps os.ErrNotExist
// when there is none.
func readProjectFile(dir string) (*project, error) {
	return loadProject(filepath.Join(dir, projectFileName))
}

func loadProject(path string) (*project, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p project
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %v (see `purista dev --help` for the fields)", path, err)
	}
	p.dir = filepath.Dir(path)
	var errs []string
	seen := map[string]bool{}
	for i := range p.Processes {
		pr := &p.Processes[i]
		where := fmt.Sprintf("process %d (%s)", i+1, pr.Name)
		switch {
		case !processNameRE.MatchString(pr.Name):
			errs = append(errs, where+": name it with lower-case letters, digits, - and _")
		case seen[pr.Name]:
			errs = append(errs, where+": the name is taken by another process")
		}
		seen[pr.Name] = true
		if (pr.Package == "") == (len(pr.Command) == 0) {
			errs = append(errs, where+": give either package (a Go main package, e.g. ./cmd/"+pr.Name+") or command (a program and its arguments)")
		}
		if pr.Delay != "" {
			if pr.delay, err = time.ParseDuration(pr.Delay); err != nil || pr.delay < 0 {
				errs = append(errs, fmt.Sprintf("%s: delay %q: write a duration such as 500ms or 2s", where, pr.Delay))
			}
		}
		if pr.Demo {
			pr.Once = true
		}
	}
	if n := countHTTP(p.Processes); n > 1 {
		errs = append(errs, fmt.Sprintf("%d processes say http: true: mark only the gateway, the one process dev gives PURISTA_HTTP_ADDR and waits for", n))
	}
	if len(p.Processes) == 0 {
		errs = append(errs, "no processes: list the programs of your system under processes:")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(errs, "; "))
	}
	return &p, nil
}

func countHTTP(procs []process) int {
	n := 0
	for _, pr := range procs {
		if pr.HTTP {
			n++
		}
	}
	return n
}

// contractFlags returns where the project's contracts are, unless the
// command line said so already.
func (p *project) contractFlags(cf contractFlags) contractFlags {
	if cf.image != "" || cf.dir != "" {
		return cf
	}
	switch {
	case p.Image != "":
		cf.image = filepath.Join(p.dir, p.Image)
	case p.Contracts != "":
		cf.dir = filepath.Join(p.dir, p.Contracts)
	default:
		cf.dir = p.dir
	}
	return cf
}

func (p *project) broker() bool { return p.Broker == nil || *p.Broker }

// errNoProject explains what purista dev runs.
var errNoProject = errors.New("no " + projectFileName + " here: purista dev runs the processes it lists. " +
	"Run it in the directory of your purista.yaml (purista init service writes one), or pass -f path/to/purista.yaml")
