package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/internal/kafkatest/faultproxy"
)

// echoServer answers every line with the same line until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one line and reads it back, within a second.
func roundTrip(c net.Conn, line string) error {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echo mismatch: " + got)
	}
	return nil
}

// dialAndRoundTrip is roundTrip on a new connection. On loopback the reset
// of a rejected connection can arrive before the dial returns, so either may
// fail.
func dialAndRoundTrip(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, "x")
}

// waitConns waits until the proxy has n open connections: the proxy
// registers a connection after dialling the target, a moment after the
// client's dial returned.
func waitConns(t *testing.T, p *faultproxy.Proxy, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Conns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("proxy has %d connections, want %d", p.Conns(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestResetAll(t *testing.T) {
	p := start(t, echoServer(t))
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	for _, c := range []net.Conn{a, b} {
		if err := roundTrip(c, "hello"); err != nil {
			t.Fatalf("before reset: %v", err)
		}
	}
	if n := p.ResetAll(); n != 2 {
		t.Fatalf("ResetAll cut %d connections, want 2", n)
	}
	for _, c := range []net.Conn{a, b} {
		err := roundTrip(c, "again")
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("after reset: %v, want connection reset", err)
		}
	}
	if err := roundTrip(dial(t, p.Addr()), "fresh"); err != nil {
		t.Fatalf("a new connection after reset: %v", err)
	}
	if got := p.Accepted(); got != 3 {
		t.Fatalf("Accepted() = %d, want 3", got)
	}
}

func TestPauseResume(t *testing.T) {
	p := start(t, echoServer(t))
	c := dial(t, p.Addr())
	if err := roundTrip(c, "one"); err != nil {
		t.Fatal(err)
	}
	p.Pause()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := io.WriteString(c, "held\n"); err != nil {
		t.Fatalf("a write while paused should succeed (it sits in buffers): %v", err)
	}
	var buf [16]byte
	if _, err := c.Read(buf[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read while paused: %v, want a timeout", err)
	}
	p.Resume()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "held\n" {
		t.Fatalf("after resume read %q, %v; want the held line", got, err)
	}
}

func TestLatency(t *testing.T) {
	p := start(t, echoServer(t))
	c := dial(t, p.Addr())
	const d = 250 * time.Millisecond
	p.SetLatency(d)
	t0 := time.Now()
	if err := roundTrip(c, "slow"); err != nil {
		t.Fatal(err)
	}
	// There and back: twice the latency.
	if got := time.Since(t0); got < 2*d {
		t.Fatalf("round trip took %v with latency %v each way", got, d)
	}
	p.SetLatency(0)
	t0 = time.Now()
	if err := roundTrip(c, "fast"); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(t0); got >= d {
		t.Fatalf("round trip took %v after the latency was removed", got)
	}
}

func TestRejectNewAndDeadTarget(t *testing.T) {
	p := start(t, echoServer(t))
	live := dial(t, p.Addr())
	waitConns(t, p, 1)
	p.RejectNew(true)
	if err := dialAndRoundTrip(p.Addr()); err == nil {
		t.Fatal("a connection made while rejecting worked")
	}
	if err := roundTrip(live, "still"); err != nil {
		t.Fatalf("RejectNew touched a live connection: %v", err)
	}
	p.RejectNew(false)

	// A target that is down: the dial succeeds, the first exchange fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p.SetTarget(dead)
	if err := dialAndRoundTrip(p.Addr()); err == nil {
		t.Fatal("a connection to a dead target worked")
	}
}

// TestKafkaConn shows the fault a transport meets: a kafka-go connection
// through the proxy fails after ResetAll, and a new dial works. The embedded
// broker will do: a kafka.Conn made from a net.Conn talks only to that
// connection (kafka.DialLeader would look the leader up and go around the
// proxy to the address the metadata names).
func TestKafkaConn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded broker")
	}
	brokers := kafkatest.Embedded(t)
	topic := kafkatest.TopicName(t)
	kafkatest.CreateTopic(t, brokers, topic, 1)
	p := start(t, brokers[0])

	conn := kafka.NewConn(dial(t, p.Addr()), topic, 0)
	if _, err := conn.WriteMessages(kafka.Message{Value: []byte("before")}); err != nil {
		t.Fatalf("write through the proxy: %v", err)
	}
	waitConns(t, p, 1)
	p.ResetAll()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.WriteMessages(kafka.Message{Value: []byte("after")}); err == nil {
		// The write may land in the socket buffer before the RST is
		// seen; the answer's read cannot succeed.
		t.Fatal("a write on a reset connection succeeded")
	} else {
		t.Logf("kafka-go after reset: %v", err)
	}

	again := kafka.NewConn(dial(t, p.Addr()), topic, 0)
	if _, err := again.WriteMessages(kafka.Message{Value: []byte("after")}); err != nil {
		t.Fatalf("write on a new connection: %v", err)
	}
}
