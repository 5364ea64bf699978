package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProjectFile(t *testing.T) {
	write := func(t *testing.T, text string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), projectFileName)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p, err := loadProject(write(t, `
contracts: proto
processes:
  - name: gateway
    package: ./cmd/gateway
    http: true
  - name: demo
    command: [./demo.sh, -v]
    demo: true
    delay: 1500ms
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Processes) != 2 || !p.Processes[1].Once || p.Processes[1].delay != 1500*time.Millisecond || !p.broker() {
		t.Errorf("read %+v", p)
	}
	if cf := p.contractFlags(contractFlags{}); cf.dir != filepath.Join(p.dir, "proto") {
		t.Errorf("contracts directory %q", cf.dir)
	}

	for _, c := range []struct{ text, want string }{
		{"processes: []", "no processes: list the programs of your system under processes:"},
		{"processes:\n  - name: api\n", "process 1 (api): give either package (a Go main package, e.g. ./cmd/api) or command"},
		{"processes:\n  - name: Api\n    package: .\n", "process 1 (Api): name it with lower-case letters"},
		{"processes:\n  - name: a\n    package: .\n  - name: a\n    package: .\n", "process 2 (a): the name is taken"},
		{"processes:\n  - name: a\n    package: .\n    delay: soon\n", `delay "soon": write a duration such as 500ms or 2s`},
		{"processes:\n  - name: a\n    package: .\n    http: true\n  - name: b\n    package: .\n    http: true\n", "2 processes say http: true"},
		{"procesess: []", "field procesess not found"},
	} {
		if _, err := loadProject(write(t, c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}
