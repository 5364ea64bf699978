// Package faultproxy is a TCP proxy for fault-injection tests: it forwards
// connections from a loopback port to a target address and, on demand, cuts
// every live connection with a TCP reset (ResetAll), holds all traffic still
// (Pause), slows it (SetLatency) or resets new connections (RejectNew).
//
// A Kafka client only stays behind the proxy if the broker advertises the
// proxy's address: clients bootstrap on one address and then dial whatever
// the metadata names. The cluster harness (internal/kafkatest/cluster) starts
// brokers that way; on its own the proxy suits a single kafka.Conn or any
// other client that never asks where to go next.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections accepted on its own address to a target.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln net.Listener

	mu      sync.Mutex
	target  string
	links   map[*link]struct{}
	gate    chan struct{} // non-nil while paused; closed by Resume
	reject  bool
	closed  bool
	history int

	latency atomic.Int64 // time.Duration added to every chunk
	wg      sync.WaitGroup
}

// link is one proxied connection: the client's side and the target's side.
type link struct {
	client, server net.Conn
	done           chan struct{} // closed once both sides are closed
	once           sync.Once
}

// New starts a proxy on a free 127.0.0.1 port that forwards to target.
func New(target string) (*Proxy, error) {
	return Listen("127.0.0.1:0", target)
}

// Listen starts a proxy on addr that forwards to target. The target may be
// down or not chosen yet (see [Proxy.SetTarget]); connections accepted
// meanwhile are closed at once, as a dead host would close them.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", addr, err)
	}
	p := &Proxy{ln: ln, target: target, links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients dial, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port returns the port of [Proxy.Addr].
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// SetTarget changes where new connections go; live ones keep their target.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Conns returns how many connections are open through the proxy now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Accepted returns how many connections the proxy has forwarded since it
// started; a test reads it to see that a client dialled again.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.history
}

// ResetAll cuts every live connection: both sides are closed with linger 0,
// so the peers get a TCP RST (ECONNRESET on their next read or write), which
// is what a crashed host, a NAT dropping its table or a load balancer
// restarting looks like. New connections are accepted as before. It returns
// the number of connections cut.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	links := p.links
	p.links = map[*link]struct{}{}
	p.mu.Unlock()
	for l := range links {
		l.reset()
	}
	return len(links)
}

// Pause stops forwarding bytes in both directions without closing anything,
// like a network partition: writes succeed until the socket buffers fill,
// reads wait, and only the clients' own timeouts notice. Connections
// accepted meanwhile wait too. Resume lets everything through again.
func (p *Proxy) Pause() {
	p.mu.Lock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
	p.mu.Unlock()
}

// Resume ends a [Proxy.Pause]; held bytes are delivered in order.
func (p *Proxy) Resume() {
	p.mu.Lock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
	p.mu.Unlock()
}

// SetLatency delays every byte by d in each direction (0 turns it off),
// like a slow or distant link: a request and its answer take 2*d longer.
// It applies to chunks read from now on.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// RejectNew makes the proxy reset every new connection at once (on) or
// forward it again (off), as a host whose service is down would: the dial
// succeeds, the first read fails. Live connections are left alone.
func (p *Proxy) RejectNew(on bool) {
	p.mu.Lock()
	p.reject = on
	p.mu.Unlock()
}

// Close stops listening and closes every connection. It waits for the
// proxy's goroutines, so nothing of it outlives the test.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	links := p.links
	p.links = map[*link]struct{}{}
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for l := range links {
		l.reset()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Accept errors other than closing (EMFILE and the like)
			// are transient; a proxy that stopped accepting would
			// look like a fault nobody injected.
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	target, reject, closed := p.target, p.reject, p.closed
	p.mu.Unlock()
	if closed || reject || target == "" {
		rst(client)
		return
	}
	server, err := net.Dial("tcp", target)
	if err != nil {
		// The target is down: the client sees its connection reset,
		// close to the "connection refused" it would get without us.
		rst(client)
		return
	}
	l := &link{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.reset()
		return
	}
	p.links[l] = struct{}{}
	p.history++
	p.mu.Unlock()

	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(l, server, client) }()
	go func() { defer pipes.Done(); p.pipe(l, client, server) }()
	pipes.Wait()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// pipe copies src to dst until either side fails, holding bytes while the
// proxy is paused and for the latency set. Kafka never half-closes a
// connection, so the end of one direction ends the link.
//
// Reading and writing are two goroutines joined by a queue, so that
// latency delays each chunk from the moment it arrived: a stream of chunks
// arrives late by the latency once, not once per chunk.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	type chunk struct {
		data []byte
		at   time.Time
	}
	queue := make(chan chunk, 64)
	readerDone := make(chan struct{})
	// Closing the link ends the reader's Read; waiting for it keeps
	// Close's promise that no goroutine outlives the proxy.
	defer func() { l.close(); <-readerDone }()
	go func() {
		defer close(readerDone)
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case queue <- chunk{buf[:n], time.Now()}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		if d := time.Until(c.at.Add(time.Duration(p.latency.Load()))); d > 0 {
			select {
			case <-time.After(d):
			case <-l.done:
				return
			}
		}
		if !p.wait(l) {
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}

// wait blocks while the proxy is paused; false means the link was closed
// meanwhile.
func (p *Proxy) wait(l *link) bool {
	for {
		p.mu.Lock()
		gate := p.gate
		p.mu.Unlock()
		if gate == nil {
			return true
		}
		select {
		case <-gate:
		case <-l.done:
			return false
		}
	}
}

// close ends a link that ended by itself (EOF or error on one side): an
// ordinary close, so the other peer sees what the first one did.
func (l *link) close() {
	l.once.Do(func() {
		_ = l.client.Close()
		_ = l.server.Close()
		close(l.done)
	})
}

func (l *link) reset() {
	l.once.Do(func() {
		rst(l.client)
		rst(l.server)
		close(l.done)
	})
}

// rst closes c so that the peer receives a TCP RST instead of a FIN.
func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
