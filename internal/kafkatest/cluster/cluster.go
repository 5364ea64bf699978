// Package cluster runs real Apache Kafka brokers (KRaft, combined
// broker+controller nodes on 127.0.0.1) as OS processes that a test can stop,
// kill and restart, for the broker fault suite.
//
//	func TestLeaderLoss(t *testing.T) {
//		c := cluster.Start(t, cluster.Config{Nodes: 3})
//		ctx := t.Context()
//		if err := c.CreateTopic(ctx, "orders", 3); err != nil {
//			t.Fatal(err)
//		}
//		leader, err := c.LeaderOf(ctx, "orders", 0)
//		...
//		err = c.Kill(leader)
//		... callers on c.Brokers() ride out the election ...
//		err = c.StartNode(leader)
//		err = c.WaitReady(ctx)
//	}
//
// The methods return errors rather than failing a test, so that a scenario
// may call them from any goroutine (a fault injected while traffic runs).
//
// Start skips the test unless PURISTA_FAULTS=1 (make faults), so `make test`
// never pays for a cluster. The broker jars come from scripts/kafka.sh fetch
// (Maven) into .cache/kafka/<version>/libs.
//
// Time on two shared cores: a 3-node start 15-25 s (JVM start-up is most of
// it), a node's restart 4-10 s, a new leader 2-3 s after a SIGTERM and 8 s
// after a SIGKILL with Kafka's defaults (3 s with [FastFailover]). Share one
// cluster between the steps of a scenario where you can, and do not run
// cluster tests in parallel: three JVMs already fill the machine.
//
// Each node has three listeners: CLIENT for clients, INTERNAL for
// replication, CONTROLLER for the KRaft quorum. With [Config.Proxied] a
// faultproxy sits in front of every node's CLIENT listener and the node
// advertises the proxy's address, so clients that learn brokers from
// metadata stay behind the proxy, while replication between brokers does
// not go through it: a proxy fault hits clients only.
package cluster

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/internal/kafkatest/faultproxy"
)

// Config describes a cluster. The zero value is a three-node cluster.
type Config struct {
	// Nodes is the number of combined broker+controller nodes: 1 or 3
	// (default 3). Three make a controller quorum that survives one loss
	// and topics with replication 3 and min.insync.replicas 2.
	Nodes int
	// BrokerProps are added to every node's server.properties, replacing
	// the harness's value for a key it also sets (see [Props]).
	BrokerProps map[string]string
	// Proxied puts a faultproxy in front of each node's client listener
	// and makes the node advertise the proxy; see [Cluster.Proxy].
	Proxied bool
	// Heap is the JVM heap flags of each node (default "-Xms64m -Xmx256m").
	Heap string
	// StartTimeout bounds the start of the cluster (default 3 minutes: a
	// 3-node start took 15 s on two idle cores and 78 s when other builds
	// loaded them to 18).
	StartTimeout time.Duration

	// Dir holds each node's configuration, data and logs (Launch only;
	// Start uses t.TempDir()).
	Dir string
	// Libs is the directory of the broker jars (default: the repository's
	// .cache/kafka/<version>/libs, fetched with scripts/kafka.sh when
	// missing).
	Libs string
	// Logf receives progress lines (default: none).
	Logf func(format string, args ...any)
}

// Cluster is a running set of broker processes. Its methods are safe for
// concurrent use; node indexes run from 0 to Nodes-1 (node.id is index+1).
type Cluster struct {
	cfg       Config
	libs      string
	log4j     string
	clusterID string
	version   string // from the pom until a broker logs its own
	nodes     []*node
	cds       classSharing

	mu     sync.Mutex
	closed bool
}

type node struct {
	index    int
	dir      string
	client   int // CLIENT listener port
	internal int // INTERNAL (replication) listener port
	ctrl     int // CONTROLLER listener port
	proxy    *faultproxy.Proxy

	mu     sync.Mutex
	proc   *process // nil when not started or after Stop/Kill
	frozen bool     // stopped with SIGSTOP by Freeze
}

// process is one JVM run of a node.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
	// expected is set before the harness signals the process, so that an
	// exit it caused is not reported as a crash.
	expected atomic.Bool
	// archive is the class-sharing archive this run dumps at its exit
	// (see cds.go), "" for none.
	archive string
}

func (c *Config) defaults() error {
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Nodes != 1 && c.Nodes != 3 {
		return fmt.Errorf("cluster: Nodes is %d; use 1 (one broker) or 3 (a controller quorum that survives losing one node; two nodes would survive none)", c.Nodes)
	}
	if c.Heap == "" {
		c.Heap = "-Xms64m -Xmx256m"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 3 * time.Minute
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Dir == "" {
		return errors.New("cluster: Config.Dir is empty; give a directory for the nodes' data and logs")
	}
	return nil
}

// Launch formats and starts the nodes and waits until they are ready. On
// error nothing is left running. Tests use [Start]; Launch serves commands
// such as cmd/kafkacluster, and a TestMain that shares one cluster between
// a package's tests (check PURISTA_FAULTS there, and Close before exiting).
func Launch(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("java"); err != nil {
		return nil, fmt.Errorf("%w: java not found (install Java 17+, for example apt-get install openjdk-17-jre-headless)", ErrNoJava)
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	libs := cfg.Libs
	if libs == "" {
		if libs, err = fetchLibs(ctx, root); err != nil {
			return nil, err
		}
	}
	version, err := Version(root)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:       cfg,
		version:   version,
		libs:      libs,
		log4j:     filepath.Join(root, "scripts", "kafka", "log4j2.properties"),
		clusterID: newClusterID(),
	}
	c.cds.dir = filepath.Join(filepath.Dir(libs), "cds")
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if err := c.layout(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := c.format(ctx); err != nil {
		return nil, err
	}
	tFormat := time.Since(t0)
	for i := range c.nodes {
		if err := c.StartNode(i); err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := c.WaitReady(wctx); err != nil {
		return nil, err
	}
	tReady := time.Since(t0)
	// The first FindCoordinator creates __consumer_offsets; kafka-go
	// backs off for seconds while that happens, so do it here rather
	// than in the first test that joins a group.
	if err := c.warmGroups(wctx); err != nil {
		return nil, err
	}
	cfg.Logf("cluster: %d Kafka node(s) ready at %s in %.1fs (format %.1fs, brokers up %.1fs, group coordinator %.1fs); logs in %s",
		len(c.nodes), strings.Join(c.Brokers(), ","), time.Since(t0).Seconds(), tFormat.Seconds(),
		(tReady - tFormat).Seconds(), (time.Since(t0) - tReady).Seconds(), cfg.Dir)
	ok = true
	return c, nil
}

// ErrNoJava is wrapped by Launch's error when there is no Java to run Kafka.
var ErrNoJava = errors.New("cluster: cannot run Kafka")

// layout picks the ports, starts the proxies and writes each node's
// server.properties.
func (c *Cluster) layout() error {
	n := c.cfg.Nodes
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		nd := &node{
			index:    i,
			dir:      filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d", i)),
			client:   ports[3*i],
			internal: ports[3*i+1],
			ctrl:     ports[3*i+2],
		}
		if c.cfg.Proxied {
			// The proxy takes a port of its own and keeps it for the
			// cluster's life: the broker listens on nd.client and
			// advertises the proxy, whose address must never change,
			// whatever happens to the broker behind it.
			if nd.proxy, err = faultproxy.New(loop(nd.client)); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(nd.dir, 0o755); err != nil {
			return err
		}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		if err := os.WriteFile(nd.propsFile(), []byte(c.props(nd).String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (nd *node) propsFile() string { return filepath.Join(nd.dir, "server.properties") }

// Addr returns the address clients reach node i at: its proxy's when
// the cluster is proxied, else its CLIENT listener.
func (c *Cluster) Addr(i int) string {
	nd := c.nodes[i]
	if nd.proxy != nil {
		return nd.proxy.Addr()
	}
	return loop(nd.client)
}

// DirectAddr returns node i's own CLIENT listener, bypassing its proxy.
func (c *Cluster) DirectAddr(i int) string { return loop(c.nodes[i].client) }

// Brokers returns the bootstrap addresses of all nodes, running or not, in
// node order.
func (c *Cluster) Brokers() []string {
	out := make([]string, len(c.nodes))
	for i := range c.nodes {
		out[i] = c.Addr(i)
	}
	return out
}

// Nodes returns the number of nodes.
func (c *Cluster) Nodes() int { return len(c.nodes) }

// Proxy returns node i's fault proxy, or nil when the cluster is not
// [Config.Proxied].
func (c *Cluster) Proxy(i int) *faultproxy.Proxy { return c.nodes[i].proxy }

// LogFile returns the path of node i's broker log.
func (c *Cluster) LogFile(i int) string { return filepath.Join(c.nodes[i].dir, "server.log") }

// Version returns the Kafka version the first node logged at start-up
// ("Kafka version: ..."), or the one scripts/kafka/pom.xml pins.
func (c *Cluster) Version() string {
	b, err := os.ReadFile(c.LogFile(0))
	if err == nil {
		if m := loggedVersionRE.FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	return c.version
}

var loggedVersionRE = regexp.MustCompile(`Kafka version: (\S+)`)

// Dir returns the directory holding the nodes' configuration, data and logs.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// format writes each node's KRaft metadata (meta.properties and the
// bootstrap checkpoint), all nodes at once: each is a JVM start of about a
// second.
func (c *Cluster) format(ctx context.Context) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			share, tmp := c.archiveFlags("format")
			args := append(c.jvm(nd), share...)
			args = append(args, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", filepath.Join(c.libs, "*"),
				// kafka.tools.StorageTool is what bin/kafka-storage.sh
				// runs in 4.x; with controller.quorum.voters set (a
				// static quorum) it needs no --initial-controllers.
				"kafka.tools.StorageTool", "format", "--cluster-id", c.clusterID, "--config", nd.propsFile())
			cmd := exec.CommandContext(ctx, "java", args...)
			out, err := cmd.CombinedOutput()
			if cmd.ProcessState != nil {
				finishArchive(tmp, "format", cmd.ProcessState)
			}
			if err != nil {
				errs[i] = fmt.Errorf("cluster: formatting node %d failed (%v):\n%s", i, err, out)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) jvm(nd *node) []string {
	args := strings.Fields(c.cfg.Heap)
	return append(args,
		"-Djava.awt.headless=true",
		"-Dkafka.logs.dir="+nd.dir,
		"-Dlog4j2.configurationFile="+c.log4j,
	)
}

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

// WaitReady waits until every node that was started (and not stopped or
// killed since; frozen ones included, so Thaw them first) answers
// ApiVersions and Metadata on its own listener, and each one's metadata
// lists all of them as live brokers. It fails at once
// when a node's process has exited without being told to, or when no node
// is running.
func (c *Cluster) WaitReady(ctx context.Context) error {
	err := poll(ctx, 100*time.Millisecond, func() error { return c.ready(ctx) })
	if err != nil {
		return fmt.Errorf("cluster: nodes not ready: %w; logs in %s", err, c.cfg.Dir)
	}
	return nil
}

// poll calls try until it returns nil or a *finalError, or ctx ends; the
// error then names the last failure, which says more than "deadline
// exceeded".
func poll(ctx context.Context, every time.Duration, try func() error) error {
	for {
		err := try()
		if err == nil {
			return nil
		}
		var final *finalError
		if errors.As(err, &final) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%v (last: %w)", ctx.Err(), err)
		case <-time.After(every):
		}
	}
}

// finalError is a readiness failure that waiting cannot cure.
type finalError struct{ msg string }

func (e *finalError) Error() string { return e.msg }

func (c *Cluster) ready(ctx context.Context) error {
	var want []int
	for i, nd := range c.nodes {
		nd.mu.Lock()
		p := nd.proc
		nd.mu.Unlock()
		if p == nil {
			continue
		}
		select {
		case <-p.done:
			if !p.expected.Load() {
				return &finalError{fmt.Sprintf("cluster: node %d exited by itself (%v); broker log %s ends:\n%s", i, p.err, c.LogFile(i), nodeTail(nd.dir, i, 15))}
			}
			continue
		default:
		}
		want = append(want, i+1)
	}
	if len(want) == 0 {
		return &finalError{"cluster: no node is running (StartNode starts one)"}
	}
	for _, id := range want {
		conn, err := c.dialNode(ctx, id-1)
		if err != nil {
			return err
		}
		_, err = conn.ApiVersions()
		var brokers []kafka.Broker
		if err == nil {
			brokers, err = conn.Brokers()
		}
		conn.Close()
		if err != nil {
			return fmt.Errorf("node %d: %w", id-1, err)
		}
		live := map[int]bool{}
		for _, b := range brokers {
			live[b.ID] = true
		}
		for _, w := range want {
			if !live[w] {
				return fmt.Errorf("node %d's metadata does not list node %d yet", id-1, w-1)
			}
		}
	}
	return nil
}

// dialNode connects to node i's own CLIENT listener (not its proxy: a
// paused proxy must not make the harness think the broker is down).
func (c *Cluster) dialNode(ctx context.Context, i int) (*kafka.Conn, error) {
	d := &kafka.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.DirectAddr(i))
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", i, err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn, nil
}

func (c *Cluster) warmGroups(ctx context.Context) error {
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 5 * time.Second, Transport: &kafka.Transport{}}
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	err := poll(ctx, 200*time.Millisecond, func() error {
		fc, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: "purista-warmup", KeyType: kafka.CoordinatorKeyTypeConsumer})
		if err == nil {
			err = fc.Error
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: no group coordinator: %w", err)
	}
	return nil
}

// LeaderOf returns the index of the node leading topic's partition, as the
// first running node that answers sees it. Right after a Kill the answer is
// still the dead node until the controller fences it; [Cluster.WaitLeader]
// waits for a change.
func (c *Cluster) LeaderOf(ctx context.Context, topic string, partition int) (int, error) {
	p, err := c.partition(ctx, topic, partition)
	if err != nil {
		return -1, err
	}
	if p.Leader.ID <= 0 {
		return -1, fmt.Errorf("cluster: %s/%d has no leader", topic, partition)
	}
	return p.Leader.ID - 1, nil
}

// WaitLeader waits until topic's partition has a leader other than node
// not (-1: any leader) and returns its index.
func (c *Cluster) WaitLeader(ctx context.Context, topic string, partition, not int) (int, error) {
	leader := -1
	err := poll(ctx, 50*time.Millisecond, func() error {
		l, err := c.LeaderOf(ctx, topic, partition)
		if err == nil && l == not {
			err = fmt.Errorf("leader is still node %d", l)
		}
		leader = l
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("cluster: %s/%d: no new leader: %w", topic, partition, err)
	}
	return leader, nil
}

// CoordinatorOf returns the index of the node coordinating consumer group
// group: the leader of its __consumer_offsets partition, the node to take
// away to make a group move.
func (c *Cluster) CoordinatorOf(ctx context.Context, group string) (int, error) {
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 5 * time.Second, Transport: &kafka.Transport{}}
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	fc, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: group, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err == nil {
		err = fc.Error
	}
	if err != nil {
		return -1, fmt.Errorf("cluster: coordinator of group %s: %w", group, err)
	}
	return fc.Coordinator.NodeID - 1, nil
}

// InSync returns the node indexes in the in-sync replica set of topic's
// partition.
func (c *Cluster) InSync(ctx context.Context, topic string, partition int) ([]int, error) {
	p, err := c.partition(ctx, topic, partition)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, b := range p.Isr {
		out = append(out, b.ID-1)
	}
	sort.Ints(out)
	return out, nil
}

// WaitInSync waits until every running node's metadata shows every
// partition of topic with a leader and all its replicas in sync, for
// example before a test takes the next broker away. Each node learns
// metadata on its own: a topic one node knows may be unknown to the next
// for a moment, and kafka-go's Writer fails rather than retries then.
func (c *Cluster) WaitInSync(ctx context.Context, topic string) error {
	if err := poll(ctx, 100*time.Millisecond, func() error { return c.allInSync(ctx, topic) }); err != nil {
		return fmt.Errorf("cluster: %s not in sync: %w", topic, err)
	}
	return nil
}

func (c *Cluster) allInSync(ctx context.Context, topic string) error {
	asked := 0
	for _, i := range c.answering() {
		parts, err := c.partitionsFrom(ctx, i, topic)
		if err != nil {
			return err
		}
		if len(parts) == 0 {
			return fmt.Errorf("node %d does not know %s yet", i, topic)
		}
		for _, p := range parts {
			if p.Leader.ID <= 0 || len(p.Isr) != len(p.Replicas) {
				return fmt.Errorf("node %d: partition %d: leader %d, %d of %d replicas in sync", i, p.ID, p.Leader.ID-1, len(p.Isr), len(p.Replicas))
			}
		}
		asked++
	}
	if asked == 0 {
		return errors.New("no node is running")
	}
	return nil
}

// answering returns the nodes that are running and not frozen.
func (c *Cluster) answering() []int {
	var out []int
	for i, nd := range c.nodes {
		nd.mu.Lock()
		frozen := nd.frozen
		nd.mu.Unlock()
		if !frozen && c.Running(i) {
			out = append(out, i)
		}
	}
	return out
}

func (c *Cluster) partition(ctx context.Context, topic string, partition int) (kafka.Partition, error) {
	parts, err := c.partitions(ctx, topic)
	if err != nil {
		return kafka.Partition{}, err
	}
	for _, p := range parts {
		if p.ID == partition {
			return p, nil
		}
	}
	return kafka.Partition{}, fmt.Errorf("cluster: %s has no partition %d", topic, partition)
}

// partitions reads topic's partitions from the first answering node.
func (c *Cluster) partitions(ctx context.Context, topic string) ([]kafka.Partition, error) {
	var errs []error
	for _, i := range c.answering() {
		parts, err := c.partitionsFrom(ctx, i, topic)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return parts, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("cluster: no node is running")
	}
	return nil, fmt.Errorf("cluster: metadata of %s: %w", topic, errors.Join(errs...))
}

func (c *Cluster) partitionsFrom(ctx context.Context, i int, topic string) ([]kafka.Partition, error) {
	conn, err := c.dialNode(ctx, i)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", i, err)
	}
	return parts, nil
}

// CreateTopic creates a topic with the cluster's replication (3, or 1 on a
// one-node cluster) and waits until every node knows it with a leader and
// all replicas in sync ([Cluster.WaitInSync]).
func (c *Cluster) CreateTopic(ctx context.Context, name string, partitions int) error {
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers()...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: len(c.nodes)}},
	})
	if err == nil {
		err = resp.Errors[name]
	}
	if err != nil {
		return fmt.Errorf("cluster: create topic %s: %w", name, err)
	}
	return c.WaitInSync(ctx, name)
}

// FastFailover returns broker settings that make the controller fence a
// killed or frozen node after 3 s instead of Kafka's 9 s
// (broker.session.timeout.ms, heartbeats every 500 ms instead of 2 s), for
// scenarios that take many nodes away and would otherwise spend most of
// their time waiting. Kafka's defaults are what production clusters run;
// use this where the election's length is not what the test is about.
// Pass it as Config.BrokerProps (or merge it into yours).
func FastFailover() map[string]string {
	return map[string]string{
		"broker.session.timeout.ms":    "3000",
		"broker.heartbeat.interval.ms": "500",
	}
}

// Props is a server.properties file: keys in the order they were set.
type Props struct {
	keys []string
	vals map[string]string
}

// Set sets key to value, keeping the key's place if it was set before.
func (p *Props) Set(key, value string) {
	if p.vals == nil {
		p.vals = map[string]string{}
	}
	if _, ok := p.vals[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.vals[key] = value
}

// Get returns key's value.
func (p *Props) Get(key string) string { return p.vals[key] }

func (p *Props) String() string {
	var b strings.Builder
	for _, k := range p.keys {
		fmt.Fprintf(&b, "%s=%s\n", k, p.vals[k])
	}
	return b.String()
}

// props is node nd's server.properties: the harness's settings, then
// Config.BrokerProps in key order.
func (c *Cluster) props(nd *node) *Props {
	n := len(c.nodes)
	rf, minISR := strconv.Itoa(n), "1"
	if n >= 3 {
		minISR = "2"
	}
	var voters []string
	for _, o := range c.nodes {
		voters = append(voters, fmt.Sprintf("%d@127.0.0.1:%d", o.index+1, o.ctrl))
	}
	advertised := loop(nd.client)
	if nd.proxy != nil {
		advertised = nd.proxy.Addr()
	}
	p := &Props{}
	p.Set("process.roles", "broker,controller")
	p.Set("node.id", strconv.Itoa(nd.index+1))
	// A static quorum: every node formats alone, no --initial-controllers
	// with directory ids to pass around.
	p.Set("controller.quorum.voters", strings.Join(voters, ","))
	p.Set("listeners", fmt.Sprintf("CLIENT://127.0.0.1:%d,INTERNAL://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", nd.client, nd.internal, nd.ctrl))
	p.Set("advertised.listeners", fmt.Sprintf("CLIENT://%s,INTERNAL://127.0.0.1:%d", advertised, nd.internal))
	p.Set("listener.security.protocol.map", "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT")
	p.Set("controller.listener.names", "CONTROLLER")
	p.Set("inter.broker.listener.name", "INTERNAL")
	p.Set("log.dirs", filepath.Join(nd.dir, "data"))
	// Topics are provisioned explicitly, never auto-created.
	p.Set("auto.create.topics.enable", "false")
	p.Set("num.partitions", "1")
	p.Set("default.replication.factor", rf)
	p.Set("min.insync.replicas", minISR)
	// Internal topics replicated like user topics, with few partitions:
	// fewer to create at start, and groups still spread over the nodes.
	p.Set("offsets.topic.replication.factor", rf)
	p.Set("offsets.topic.num.partitions", "3")
	p.Set("transaction.state.log.replication.factor", rf)
	p.Set("transaction.state.log.min.isr", minISR)
	p.Set("transaction.state.log.num.partitions", "3")
	p.Set("share.coordinator.state.topic.replication.factor", rf)
	p.Set("share.coordinator.state.topic.min.isr", minISR)
	// Fast groups for tests: no initial rebalance delay, sessions from 1 s.
	p.Set("group.initial.rebalance.delay.ms", "0")
	p.Set("group.min.session.timeout.ms", "1000")
	// Two shared cores for three brokers: few threads each.
	p.Set("num.network.threads", "2")
	p.Set("num.io.threads", "2")
	p.Set("background.threads", "2")
	p.Set("num.replica.fetchers", "1")
	p.Set("log.cleaner.threads", "1")
	keys := make([]string, 0, len(c.cfg.BrokerProps))
	for k := range c.cfg.BrokerProps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.Set(k, c.cfg.BrokerProps[k])
	}
	return p
}

func loop(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts returns n distinct free loopback ports outside the kernel's
// ephemeral range. A node keeps its ports across restarts, and while it is
// down any outgoing connection on the machine may be handed a port from the
// ephemeral range as its local port; if that is the node's port, the
// restarted broker cannot bind it and dies. Ports below the range are never
// handed out that way; only another process picking the same free port at
// random could collide.
func freePorts(n int) ([]int, error) {
	lo, hi := ephemeralRange()
	var out []int
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("cluster: no free loopback port outside %d-%d after %d tries", lo, hi, tries)
		}
		port := pickPort(lo, hi)
		// Holding the listener until all are chosen keeps the ports
		// distinct.
		ln, err := net.Listen("tcp", loop(port))
		if err != nil {
			continue
		}
		held = append(held, ln)
		out = append(out, port)
	}
	return out, nil
}

// ephemeralRange reads the kernel's range for local ports of outgoing
// connections (Linux's default when it cannot).
func ephemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		a, err1 := strconv.Atoi(f[0])
		b, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && a <= b {
			return a, b
		}
	}
	return lo, hi
}

// pickPort returns a random port in 10000-65535 outside [lo, hi]; below
// 10000 live many well-known services.
func pickPort(lo, hi int) int {
	var candidates [][2]int
	if lo > 10000 {
		candidates = append(candidates, [2]int{10000, lo - 1})
	}
	if hi < 65535 {
		candidates = append(candidates, [2]int{hi + 1, 65535})
	}
	if len(candidates) == 0 {
		candidates = append(candidates, [2]int{10000, 65535})
	}
	total := 0
	for _, c := range candidates {
		total += c[1] - c[0] + 1
	}
	k := rand.IntN(total)
	for _, c := range candidates {
		size := c[1] - c[0] + 1
		if k < size {
			return c[0] + k
		}
		k -= size
	}
	return 10000
}

// newClusterID makes a KRaft cluster id: 16 random bytes in unpadded
// base64url, as kafka-storage random-uuid prints. The first character is a
// letter because Kafka rejects ids starting with '-' (they read as flags).
func newClusterID() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	return "A" + id[1:]
}

// repoRoot finds the purista module's root above the working directory (a
// test's working directory is its package's).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/purista-go/purista\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cluster: cannot find the purista-go module root above the working directory; run from inside the repository or set Config.Libs")
		}
		dir = parent
	}
}

var versionRE = regexp.MustCompile(`<kafka\.version>([^<]+)</kafka\.version>`)

// Version returns the Kafka version scripts/kafka/pom.xml pins: the jars
// Maven resolves, so the one place that names it.
func Version(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "scripts", "kafka", "pom.xml"))
	if err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	m := versionRE.FindSubmatch(b)
	if m == nil {
		return "", errors.New("cluster: scripts/kafka/pom.xml names no <kafka.version>")
	}
	return string(m[1]), nil
}

// fetchLibs returns the jar directory, running scripts/kafka.sh fetch when
// the cache has not been completed yet.
func fetchLibs(ctx context.Context, root string) (string, error) {
	v, err := Version(root)
	if err != nil {
		return "", err
	}
	cache := filepath.Join(root, ".cache", "kafka", v)
	if _, err := os.Stat(filepath.Join(cache, ".complete")); err != nil {
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "kafka.sh"), "fetch")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%w: scripts/kafka.sh fetch failed (%v):\n%s", ErrNoJava, err, out)
		}
	}
	return filepath.Join(cache, "libs"), nil
}
