package kafka_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

const helperEnv = "PURISTA_TEST_HELPER_SERVER"

// TestHelperServer is not a test: run with PURISTA_TEST_HELPER_SERVER set
// it serves the Echo service until it is killed. The scaling tests start it
// as a separate process so that they can kill it without warning.
func TestHelperServer(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for the scaling tests")
	}
	parts := strings.Split(spec, "|")
	if len(parts) != 3 {
		t.Fatalf("%s=%q: want brokers|prefix|name", helperEnv, spec)
	}
	brokers, prefix, name := parts[0], parts[1], parts[2]
	srv, err := kafka.NewServer(strings.Split(brokers, ","), kafka.WithTopicPrefix(prefix), kafka.WithLogger(quiet), kafka.WithEnsureTopics(3, 1), contracts,
		kafka.WithGroupTimings(250*time.Millisecond, 6*time.Second))
	if err != nil {
		fmt.Println("helper:", err)
		os.Exit(2)
	}
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: name})
	fmt.Println("helper: serving")
	if err := srv.Serve(context.Background()); err != nil {
		fmt.Println("helper:", err)
		os.Exit(2)
	}
}

func startHelper(t *testing.T, brokers []string, prefix, name string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(brokers, ",")+"|"+prefix+"|"+name)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

type outcome struct {
	sent    time.Time
	latency time.Duration
	server  string
	err     error
}

// load sends calls at a steady rate for d, each with its own deadline, and
// returns every outcome. Every call ends: the load is bounded in count and
// time.
func load(c testingv1.EchoServiceClient, rate int, d, deadline time.Duration) []outcome {
	n := int(d.Seconds() * float64(rate))
	out := make([]outcome, n)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			resp, err := c.Echo(ctx, &testingv1.EchoRequest{Message: fmt.Sprint(i)})
			out[i] = outcome{sent: start, latency: time.Since(start), err: err}
			if err == nil {
				out[i].server = resp.GetServer()
			}
		}()
	}
	wg.Wait()
	return out
}

func summarize(t *testing.T, what string, outs []outcome, deadline time.Duration) {
	t.Helper()
	var lat []time.Duration
	failed := map[codes.Code]int{}
	servers := map[string]int{}
	for _, o := range outs {
		if o.latency > deadline+2*time.Second {
			t.Errorf("a call took %v, past its %v deadline: calls must end by their deadline", o.latency, deadline)
		}
		if o.err != nil {
			code := status.Code(o.err)
			failed[code]++
			if code != codes.DeadlineExceeded && code != codes.Unavailable {
				t.Errorf("call failed with %v, want an answer, DEADLINE_EXCEEDED or UNAVAILABLE", o.err)
			}
			continue
		}
		servers[o.server]++
		lat = append(lat, o.latency)
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatalf("%s: no call answered", what)
	}
	t.Logf("%s: %d calls, %d answered (by server %v), failed %v; latency p50 %v, p99 %v, max %v",
		what, len(outs), len(lat), servers, failed, lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

// TestServerKilled runs three server instances under a steady load and
// kills one without warning: every call ends within its deadline with an
// answer or a clear error, and the remaining instances take over the dead
// one's partitions after the session timeout.
func TestServerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~20 s")
	}
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		for _, name := range []string{"a", "b"} {
			srv := e.Server(t, conformance.Options{})
			testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: name})
			srv.Start(t)
			t.Cleanup(srv.Stop)
		}
		victim := startHelper(t, brokers, e.prefix, "victim")
		c := testingv1.NewEchoServiceClient(e.Client(t, conformance.Options{}))
		// Wait until all three have joined and the victim answers.
		waitFor(t, c, "victim", 30*time.Second)

		const deadline = 10 * time.Second
		done := make(chan []outcome)
		go func() { done <- load(c, 50, 14*time.Second, deadline) }()
		time.Sleep(3 * time.Second)
		if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		killedAt := time.Now()
		outs := <-done
		summarize(t, "one of three servers killed", outs, deadline)
		var worst time.Duration
		answeredAfter := 0
		for _, o := range outs {
			if o.err == nil && o.sent.After(killedAt) {
				answeredAfter++
				worst = max(worst, o.latency)
			}
		}
		t.Logf("pause after the kill: slowest answered call sent after it took %v", worst)
		if answeredAfter == 0 {
			t.Fatal("no call sent after the kill was answered: the remaining instances did not take over")
		}
	})
}

// TestServerStoppedGracefully stops one of two instances under load: it
// leaves the group at once, so the pause is short and no call fails.
func TestServerStoppedGracefully(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		var servers []conformance.Server
		for _, name := range []string{"a", "b"} {
			srv := e.Server(t, conformance.Options{})
			testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: name})
			srv.Start(t)
			t.Cleanup(srv.Stop)
			servers = append(servers, srv)
		}
		c := testingv1.NewEchoServiceClient(e.Client(t, conformance.Options{}))
		waitFor(t, c, "a", 30*time.Second)
		waitFor(t, c, "b", 30*time.Second)
		const deadline = 10 * time.Second
		done := make(chan []outcome)
		go func() { done <- load(c, 50, 6*time.Second, deadline) }()
		time.Sleep(2 * time.Second)
		stopStart := time.Now()
		servers[1].Stop()
		t.Logf("graceful stop took %v", time.Since(stopStart))
		outs := <-done
		summarize(t, "one of two servers stopped gracefully", outs, deadline)
		for _, o := range outs {
			if o.err != nil {
				t.Errorf("call failed during a graceful handover: %v", o.err)
				break
			}
		}
	})
}

// waitFor calls until server name answers one, so that every instance has
// joined the group before the measurement starts.
func waitFor(t *testing.T, c testingv1.EchoServiceClient, name string, within time.Duration) {
	t.Helper()
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "probe"})
		cancel()
		if err == nil && resp.GetServer() == name {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server %s did not answer within %v", name, within)
}
