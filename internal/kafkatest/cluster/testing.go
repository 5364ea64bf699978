package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Environment variables read by [Start].
const (
	// EnvFaults, when "1", lets [Start] launch brokers; `make faults`
	// sets it. Without it the cluster tests skip, so `make test` never
	// pays for three JVMs.
	EnvFaults = "PURISTA_FAULTS"
	// EnvRequire, when "1", turns a missing Java or jar cache into a
	// failure instead of a skip (the same switch as the real-Kafka suite).
	EnvRequire = "PURISTA_REQUIRE_KAFKA"
)

// SkipUnlessFaults skips the test unless PURISTA_FAULTS=1, with a one-line
// reason. Start calls it; tests that need the gate before Start (an
// expensive setup) call it themselves.
func SkipUnlessFaults(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvFaults) != "1" {
		t.Skip("broker fault suite skipped: set " + EnvFaults + "=1 (make faults) to start real Kafka brokers")
	}
}

// Start launches a cluster for the test (see [Launch]) in t.TempDir() and
// closes it in t.Cleanup, printing the tail of every node's log first when
// the test failed. It skips the test unless PURISTA_FAULTS=1, and when Java
// or the broker jars are missing (a failure with PURISTA_REQUIRE_KAFKA=1).
func Start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	SkipUnlessFaults(t)
	cfg.Dir = t.TempDir()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	c, err := Launch(context.Background(), cfg)
	if err != nil {
		if errors.Is(err, ErrNoJava) {
			if os.Getenv(EnvRequire) != "1" {
				t.Skipf("broker fault suite skipped: %v", err)
			}
			t.Fatalf("real Kafka brokers are required (%s=1): %v", EnvRequire, err)
		}
		if tail := TailLogs(cfg.Dir, 60); tail != "" {
			t.Log(tail)
		}
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Tails(40))
		}
		c.Close()
	})
	return c
}

// Tails returns the last n lines of every node's broker log and JVM output,
// for a failure report.
func (c *Cluster) Tails(n int) string { return TailLogs(c.cfg.Dir, n) }

// TailLogs is [Cluster.Tails] for a cluster's directory, for when Launch
// failed and there is no Cluster.
func TailLogs(dir string, n int) string {
	var b strings.Builder
	for i := 0; ; i++ {
		nd := filepath.Join(dir, fmt.Sprintf("node-%d", i))
		if _, err := os.Stat(nd); err != nil {
			break
		}
		b.WriteString(nodeTail(nd, i, n))
	}
	return b.String()
}

// nodeTail is the last n lines of one node's broker log and JVM output.
func nodeTail(dir string, i, n int) string {
	var b strings.Builder
	for _, f := range []string{"server.log", "stdout.log"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(data) == 0 {
			continue
		}
		fmt.Fprintf(&b, "--- node %d %s (last %d lines):\n%s\n", i, f, n, lastLines(data, n))
	}
	return b.String()
}

func lastLines(data []byte, n int) []byte {
	data = bytes.TrimRight(data, "\n")
	for i := len(data) - 1; i >= 0; i-- {
		if data[i] == '\n' {
			if n--; n == 0 {
				return data[i+1:]
			}
		}
	}
	return data
}
