package faults_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/purista-go/purista/gateway"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/transport/kafka"
)

// The suite runs the services and the gateway as processes of their own —
// this test binary started again with a role — so that a fault can kill
// one with SIGKILL as a crash would.
const (
	envRole    = "PURISTA_FAULTS_ROLE"
	envBrokers = "PURISTA_FAULTS_BROKERS"
	envPrefix  = "PURISTA_FAULTS_PREFIX"
	envLedger  = "PURISTA_FAULTS_LEDGER"
	envHTTP    = "PURISTA_FAULTS_HTTP"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envRole) {
	case "service":
		os.Exit(runRole(serveEcho))
	case "gateway":
		os.Exit(runRole(serveGateway))
	}
	os.Exit(m.Run())
}

// runRole runs a role until SIGTERM or SIGINT.
func runRole(fn func(ctx context.Context, brokers []string, prefix string, log *slog.Logger) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Debug: kafka-go's own errors (reconnects, group changes) are
	// logged at that level, and the suite is read from these logs.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := fn(ctx, strings.Split(os.Getenv(envBrokers), ","), os.Getenv(envPrefix), log); err != nil {
		log.Error("role failed", "role", os.Getenv(envRole), "error", err)
		return 1
	}
	return 0
}

// ledgerEcho answers Echo and records each execution as a line with the
// request's message (the call's ledger id) in a file of its own process.
// Each line is one write(2) on an O_APPEND file: it is in the page cache
// when the handler returns, so it survives a SIGKILL of the process.
type ledgerEcho struct {
	testingv1.UnimplementedEchoServiceServer
	mu sync.Mutex
	f  *os.File
}

func (e *ledgerEcho) Echo(_ context.Context, req *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
	e.mu.Lock()
	_, err := fmt.Fprintf(e.f, "%s %d\n", req.GetMessage(), time.Now().UnixMilli())
	e.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return &testingv1.EchoResponse{Message: req.GetMessage(), Server: fmt.Sprint(os.Getpid())}, nil
}

func serveEcho(ctx context.Context, brokers []string, prefix string, log *slog.Logger) error {
	f, err := os.OpenFile(os.Getenv(envLedger), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	srv, err := kafka.NewServer(brokers, kafka.WithTopicPrefix(prefix), kafka.WithLogger(log), kafka.WithEnsureTopics(3, -1),
		kafka.WithContracts(testingv1.EchoService_PuristaService))
	if err != nil {
		return err
	}
	testingv1.RegisterEchoServiceServer(srv, &ledgerEcho{f: f})
	return srv.Serve(ctx)
}

func serveGateway(ctx context.Context, brokers []string, prefix string, log *slog.Logger) error {
	conn, err := kafka.Dial(ctx, brokers, kafka.WithTopicPrefix(prefix), kafka.WithLogger(log),
		kafka.WithContracts(testingv1.EchoService_PuristaService))
	if err != nil {
		return err
	}
	g, err := gateway.New(conn, gateway.WithServices(gateway.Service{Contract: testingv1.EchoService_PuristaService, RegisterHTTP: testingv1.RegisterEchoServiceHTTP}),
		gateway.WithLogger(log))
	if err != nil {
		_ = conn.Close()
		return err
	}
	ln, err := net.Listen("tcp", os.Getenv(envHTTP))
	if err != nil {
		_ = g.Close()
		return err
	}
	hs := &http.Server{Handler: g, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return g.Close()
}

// proc is one role process of the suite.
type proc struct {
	name   string
	cmd    *exec.Cmd
	ledger string // service instances only
	done   chan struct{}
	killed time.Time
}

// procs starts and ends the suite's processes.
type procs struct {
	t       *testing.T
	dir     string
	brokers []string
	prefix  string
	mu      sync.Mutex
	all     []*proc
}

func (ps *procs) start(role, name, httpAddr string) *proc {
	ps.t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	logf, err := os.Create(filepath.Join(ps.dir, name+".log"))
	if err != nil {
		ps.t.Fatal(err)
	}
	env := append(os.Environ(), envRole+"="+role, envBrokers+"="+strings.Join(ps.brokers, ","), envPrefix+"="+ps.prefix)
	if role == "service" {
		p.ledger = filepath.Join(ps.dir, name+".ledger")
		env = append(env, envLedger+"="+p.ledger)
	}
	if httpAddr != "" {
		env = append(env, envHTTP+"="+httpAddr)
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// A suite that dies (a timeout, a panic) takes its processes with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		ps.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	return p
}

// kill ends p with SIGKILL, as a crash does.
func (p *proc) kill() {
	p.killed = time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends p with SIGTERM and waits for its graceful exit.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := append([]*proc(nil), ps.all...)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// services returns the service instances started so far.
func (ps *procs) services() []*proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []*proc
	for _, p := range ps.all {
		if p.ledger != "" {
			out = append(out, p)
		}
	}
	return out
}

// tails returns the last lines of every process log, for a failure.
func (ps *procs) tails(n int) string {
	var b strings.Builder
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.all {
		data, _ := os.ReadFile(filepath.Join(ps.dir, p.name+".log"))
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", p.name, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// quietLogger logs the test process's own Kafka client at Warn and above.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
