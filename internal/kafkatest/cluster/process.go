package cluster

// This file: the nodes as processes: start, stop, kill, freeze, close.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// StartNode starts node i's broker process on its ports and data
// directory, without waiting for it: follow with [Cluster.WaitReady]. It is
// an error to start a node that is running.
func (c *Cluster) StartNode(i int) error {
	if err := c.check(i); err != nil {
		return err
	}
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.proc != nil {
		return fmt.Errorf("cluster: node %d is already running (Stop or Kill it first)", i)
	}
	out, err := os.OpenFile(filepath.Join(nd.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	share, archive := c.archiveFlags("broker")
	args := append(c.jvm(nd), share...)
	args = append(args,
		// C1 only: a test broker does little work and starts faster
		// without the second compiler competing for two cores.
		"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-cp", filepath.Join(c.libs, "*"), "kafka.Kafka", nd.propsFile())
	cmd := exec.Command("java", args...)
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig: if the test binary dies (a go test -timeout panic, a
	// kill) the kernel kills the broker too, instead of leaving a JVM
	// holding ports and memory.
	// Setpgid: a Ctrl-C in the terminal goes to the foreground process
	// group; the brokers stay out of it and end when the harness says.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	fmt.Fprintf(out, "--- cluster: starting node %d at %s\n", i, time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cluster: start node %d: %w", i, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), archive: archive}
	go func() {
		p.err = cmd.Wait()
		finishArchive(p.archive, "broker", cmd.ProcessState)
		close(p.done)
	}()
	nd.proc = p
	return nil
}

// Stop ends node i with SIGTERM, as an orderly shutdown does: the broker
// hands its leaderships over (controlled shutdown) before it exits. It
// waits up to a minute, then kills.
func (c *Cluster) Stop(i int) error { return c.signal(i, syscall.SIGTERM, time.Minute) }

// Kill ends node i with SIGKILL, as a crash or a lost host does: no
// controlled shutdown; the controller fences the node when its heartbeats
// stop (broker.session.timeout.ms).
func (c *Cluster) Kill(i int) error { return c.signal(i, syscall.SIGKILL, 0) }

// Restart stops node i (SIGTERM) and starts it again on the same ports and
// data, without waiting for it to be ready.
func (c *Cluster) Restart(i int) error {
	if err := c.Stop(i); err != nil {
		return err
	}
	return c.StartNode(i)
}

// PID returns the process id of node i's JVM, 0 when it is not running.
// Tests use it for faults the harness has no method for.
func (c *Cluster) PID(i int) int {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.proc == nil {
		return 0
	}
	return nd.proc.cmd.Process.Pid
}

// Freeze stops node i's JVM with SIGSTOP: its sockets stay open but nothing
// answers, like a long GC pause or a hung host. Thaw resumes it. A frozen
// node misses its heartbeats and is fenced after broker.session.timeout.ms.
func (c *Cluster) Freeze(i int) error { return c.pause(i, syscall.SIGSTOP) }

// Thaw resumes a node stopped by [Cluster.Freeze].
func (c *Cluster) Thaw(i int) error { return c.pause(i, syscall.SIGCONT) }

func (c *Cluster) pause(i int, sig syscall.Signal) error {
	if err := c.check(i); err != nil {
		return err
	}
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.proc == nil {
		return fmt.Errorf("cluster: node %d is not running", i)
	}
	nd.frozen = sig == syscall.SIGSTOP
	return nd.proc.cmd.Process.Signal(sig)
}

// Running reports whether node i's process is alive.
func (c *Cluster) Running(i int) bool {
	nd := c.nodes[i]
	nd.mu.Lock()
	p := nd.proc
	nd.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (c *Cluster) signal(i int, sig syscall.Signal, grace time.Duration) error {
	if err := c.check(i); err != nil {
		return err
	}
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	p := nd.proc
	if p == nil {
		return fmt.Errorf("cluster: node %d is not running (StartNode starts it)", i)
	}
	nd.proc = nil
	nd.frozen = false
	select {
	case <-p.done:
		return fmt.Errorf("cluster: node %d had already exited (%v); see %s", i, p.err, c.LogFile(i))
	default:
	}
	p.expected.Store(true)
	_ = p.cmd.Process.Signal(sig)
	// A frozen JVM (Freeze) handles SIGTERM only once it runs again.
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	if grace > 0 {
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
			c.cfg.Logf("cluster: node %d ignored %v for %v; killing it", i, sig, grace)
			_ = p.cmd.Process.Kill()
		}
	}
	<-p.done
	return nil
}

func (c *Cluster) check(i int) error {
	if i < 0 || i >= len(c.nodes) {
		return fmt.Errorf("cluster: no node %d (the cluster has nodes 0..%d)", i, len(c.nodes)-1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("cluster: already closed")
	}
	return nil
}

// Close kills every node and stops the proxies. It keeps the directory
// (Start's t.TempDir() goes away with the test; Launch's caller decides).
func (c *Cluster) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	// A process dumping a class-sharing archive gets SIGTERM first, while
	// the others still run (its controlled shutdown needs them): the dump
	// happens at an orderly exit only. Once per machine.
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if p := nd.proc; p != nil && p.archive != "" {
			p.expected.Store(true)
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
			}
		}
		nd.mu.Unlock()
	}
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if p := nd.proc; p != nil {
			p.expected.Store(true)
			_ = p.cmd.Process.Kill()
			<-p.done
			nd.proc = nil
		}
		nd.mu.Unlock()
		if nd.proxy != nil {
			_ = nd.proxy.Close()
		}
	}
}
