package cluster_test

import (
	"context"
	"strings"
	"testing"

	"github.com/purista-go/purista/internal/kafkatest/cluster"
)

// These run in `make test`: no broker, no Java.

func TestConfigRejected(t *testing.T) {
	for _, cfg := range []cluster.Config{
		{Nodes: 2, Dir: t.TempDir()},
		{Nodes: 5, Dir: t.TempDir()},
		{Nodes: 3},
	} {
		if c, err := cluster.Launch(context.Background(), cfg); err == nil {
			c.Close()
			t.Fatalf("Launch(%+v) succeeded", cfg)
		} else {
			t.Logf("Launch(Nodes: %d, Dir: %q): %v", cfg.Nodes, cfg.Dir, err)
		}
	}
}

func TestProps(t *testing.T) {
	var p cluster.Props
	p.Set("b", "1")
	p.Set("a", "2")
	p.Set("b", "3")
	if got, want := p.String(), "b=3\na=2\n"; got != want {
		t.Fatalf("props %q, want %q (a key set twice keeps its place)", got, want)
	}
	if p.Get("a") != "2" {
		t.Fatalf("Get(a) = %q", p.Get("a"))
	}
}

func TestVersionFromPom(t *testing.T) {
	v, err := cluster.Version("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "4.") {
		t.Fatalf("pom.xml pins Kafka %q; the harness's settings are for 4.x", v)
	}
}
