// Command kafkacluster runs a command next to a real Apache Kafka cluster
// (three KRaft broker+controller nodes on 127.0.0.1 by default) for
// `scripts/kafka.sh cluster run`, with the broker list in
// PURISTA_KAFKA_CLUSTER_BROKERS. The cluster is the one the Go tests get
// from internal/kafkatest/cluster, so both have the same settings.
//
//	kafkacluster [-nodes 3] [-proxied] [-timeout 3m] [-keep] -- command args...
//
// It exits with the command's status, or 125 when the cluster did not start
// (so callers can tell the two apart), and stops the brokers and deletes
// their data either way (-keep keeps the directory for a look at the logs).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/purista-go/purista/internal/kafkatest/cluster"
)

// EnvBrokers holds the cluster's bootstrap addresses, comma-separated. It
// is not PURISTA_KAFKA_BROKERS: the one-node suite creates topics with
// replication 1, which min.insync.replicas=2 would refuse acks=all writes to.
const EnvBrokers = "PURISTA_KAFKA_CLUSTER_BROKERS"

func main() {
	nodes := flag.Int("nodes", 3, "number of broker+controller nodes: 1 or 3")
	proxied := flag.Bool("proxied", false, "put a fault proxy in front of each node and advertise it")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up starting the cluster after this long")
	keep := flag.Bool("keep", false, "keep the nodes' data and logs directory")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: kafkacluster [flags] -- command args...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(*nodes, *proxied, *timeout, *keep, flag.Args()))
}

func run(nodes int, proxied bool, timeout time.Duration, keep bool, args []string) int {
	say := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "kafkacluster: "+format+"\n", a...) }
	dir, err := os.MkdirTemp("", "purista-kafka-cluster.")
	if err != nil {
		say("%v", err)
		return 125
	}
	defer func() {
		if keep {
			say("nodes' data and logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()

	// Signals during start-up cancel it; afterwards they go to the
	// command, and the cluster stops when the command has ended.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if _, ok := <-sigs; ok {
			cancel()
		}
	}()
	c, err := cluster.Launch(ctx, cluster.Config{
		Nodes: nodes, Proxied: proxied, StartTimeout: timeout, Dir: dir,
		Logf: func(format string, a ...any) { say(format, a...) },
	})
	if err != nil {
		say("%v", err)
		say("last lines of the nodes' logs:\n%s", cluster.TailLogs(dir, 40))
		return 125
	}
	defer c.Close()
	signal.Stop(sigs)
	cancel()

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// If the launcher is killed outright, the brokers die with it
	// (the harness sets that up); the command should not run on alone
	// against brokers that are gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Env = append(os.Environ(), EnvBrokers+"="+strings.Join(c.Brokers(), ","), "PURISTA_KAFKA_VERSION="+c.Version())
	if err := cmd.Start(); err != nil {
		say("%v", err)
		return 127
	}
	fwd := make(chan os.Signal, 1)
	signal.Notify(fwd, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range fwd {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(fwd)
	close(fwd)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode()
	case errors.As(err, &exit):
		// Killed by a signal: report it the way a shell does.
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return 1
	default:
		say("%s: %v", args[0], err)
		return 1
	}
}
