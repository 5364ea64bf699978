package cluster

// This file: each node's server.properties, ports, and where the jars are.

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
)

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
	if c.cfg.Security != nil {
		c.secureProps(p)
	}
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
