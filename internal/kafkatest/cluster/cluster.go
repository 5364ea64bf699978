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
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// Security, when set, secures the cluster (see [Security]); clients
	// then need [Cluster.TLSConfig] and SASL credentials.
	Security *Security
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
	pki       *pki // with Config.Security

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
	if c.Security != nil {
		s := *c.Security // the caller's value stays as it was
		s.defaults()
		c.Security = &s
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
	if c.cfg.Security != nil {
		if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
			return err
		}
		if c.pki, err = newPKI(c.cfg.Dir); err != nil {
			return fmt.Errorf("cluster: make certificates: %w", err)
		}
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
			args = append(args, c.formatArgs()...)
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
