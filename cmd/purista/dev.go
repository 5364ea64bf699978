package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/purista-go/purista/embedded"
	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/transport/kafka"
)

type devOptions struct {
	http       string
	brokerPort int
	monolith   bool
	demo       bool
	delay      time.Duration
	logLevel   string
	color      string
	token      string

	httpSet, portSet, delaySet bool
}

func newDevCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the example system: embedded Kafka broker, gateway and every service",
		Long: `dev runs the example system on this machine with nothing installed: an
embedded Kafka-protocol broker in this process, its topics provisioned from
the contracts, and one "purista serve" process for the gateway and for each
service (users, orders, notifications), talking through the broker. Their
logs are shown line by line, prefixed with the component. Once every service
has answered a probe through Kafka, a "ready" line gives the URLs.

--monolith runs the same services and gateway in this one process on the
in-process transport instead: no broker, no topics.

--demo then sends the demo's HTTP requests and prints each with its reply;
over Kafka it starts the gateway first and the services a moment later
(--services-delay), and sends the first request before they run: it waits in
Kafka, because start order does not matter.

Ctrl-C (or SIGTERM) stops everything gracefully: the gateway first, then
the services, then the broker.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.httpSet = cmd.Flags().Changed("http")
			o.portSet = cmd.Flags().Changed("broker-port")
			o.delaySet = cmd.Flags().Changed("services-delay")
			if _, err := strconv.Atoi(o.logLevel); err == nil || (o.logLevel != "debug" && o.logLevel != "info" && o.logLevel != "warn" && o.logLevel != "error") {
				return usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", o.logLevel)}
			}
			if o.color != "auto" && o.color != "always" && o.color != "never" {
				return usageError{fmt.Errorf("--color %q: use auto, always or never", o.color)}
			}
			ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d := &dev{o: o, con: newConsole(cmd.OutOrStdout(), o.color), start: time.Now()}
			if o.monolith {
				return d.runMonolith(ctx)
			}
			return d.runKafka(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.http, "http", "127.0.0.1:8080", "gateway listen address (when the default is taken, a free port is used)")
	f.IntVar(&o.brokerPort, "broker-port", 9092, "embedded broker port on 127.0.0.1, 0 for a free one (when the default is taken, a free port is used)")
	f.BoolVar(&o.monolith, "monolith", false, "run every service and the gateway in this process on the in-process transport")
	f.BoolVar(&o.demo, "demo", false, "send the demo's HTTP requests and print them with their replies")
	f.DurationVar(&o.delay, "services-delay", 0, "start the services this long after the gateway (default 1s with --demo)")
	f.StringVar(&o.logLevel, "log-level", "info", "components' log level: debug, info, warn or error")
	f.StringVar(&o.color, "color", "auto", "color the component names: auto, always or never")
	f.StringVar(&o.token, "token", "", "bearer token the gateway requires on routes not marked public (default: none)")
	return cmd
}

type dev struct {
	o     devOptions
	con   *console
	start time.Time
}

func (d *dev) logger(component string) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(d.o.logLevel))
	return slog.New(system.NewDevHandler(d.con.writer(component), level))
}

// listen binds the gateway's address, or a free port when the default one
// is taken.
func (d *dev) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", d.o.http)
	if err == nil || d.o.httpSet {
		if err != nil {
			return nil, fmt.Errorf("the gateway cannot listen on %s (%v): pass another --http address", d.o.http, err)
		}
		return ln, nil
	}
	ln, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err2 != nil {
		return nil, err
	}
	d.con.line("dev", "%s is taken (%v); the gateway listens on %s instead", d.o.http, err, ln.Addr())
	return ln, nil
}

// runMonolith serves everything in this process over transport/inproc.
func (d *dev) runMonolith(ctx context.Context) error {
	ln, err := d.listen()
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	d.con.line("dev", "monolith: every service and the gateway in this process, on the in-process transport")
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- system.ServeMonolith(runCtx, ln, system.GatewayConfig{Token: d.o.token}, d.logger, func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		return err
	}
	d.ready(base, "monolith: one process, in-process transport")
	if d.o.demo {
		demo := &system.Demo{Base: base, Out: rawWriter{d.con}}
		if err := d.runDemo(ctx, demo, nil); err != nil {
			cancel()
			<-done
			return err
		}
	}
	d.banner(base, "")
	select {
	case <-ctx.Done():
	case err := <-done:
		return fmt.Errorf("the monolith stopped: %v", err)
	}
	d.con.line("dev", "stopping")
	t := time.Now()
	cancel()
	if err := <-done; err != nil {
		return err
	}
	d.con.line("dev", "stopped cleanly in %v", time.Since(t).Round(time.Millisecond))
	return nil
}

// runKafka runs the broker here and every component as a child process.
func (d *dev) runKafka(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this program to start the components: %w", err)
	}
	b, err := embedded.Start(embedded.WithPort(d.o.brokerPort))
	if err != nil && !d.o.portSet {
		d.con.line("broker", "port %d is taken (%v); using a free port", d.o.brokerPort, err)
		b, err = embedded.Start()
	}
	if err != nil {
		return fmt.Errorf("starting the embedded broker: %w (pass another --broker-port, 0 for a free one)", err)
	}
	defer b.Close()
	brokers := b.Addrs()
	d.con.line("broker", "embedded Kafka broker listening on %s", strings.Join(brokers, ","))

	// Provision the request and event topics from the contracts, as operators do with
	// `purista topics ensure`: brokers never create topics on their own.
	tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
	results, err := kafka.EnsureTopics(tctx, brokers, contracts.Services(), contracts.Events(), kafka.WithLogger(discardLogger()))
	tcancel()
	if err != nil {
		return fmt.Errorf("provisioning topics: %w", err)
	}
	for _, r := range results {
		d.con.line("topics", "created %s (%d partitions)", r.Name, r.Partitions)
	}

	ln, err := d.listen()
	if err != nil {
		return err
	}
	httpAddr := ln.Addr().String()
	_ = ln.Close() // the gateway process binds it
	base := "http://" + httpAddr

	common := []string{"-brokers", strings.Join(brokers, ","), "-log-format", "dev", "-log-level", d.o.logLevel, "-exit-with-parent"}
	var procs []*child
	defer func() { stopAll(procs) }()
	gwArgs := append([]string{"serve", system.Gateway, "-http", httpAddr}, common...)
	if d.o.token != "" {
		gwArgs = append(gwArgs, "-token", d.o.token)
	}
	gw, err := d.spawn(exe, system.Gateway, gwArgs...)
	if err != nil {
		return err
	}
	procs = append(procs, gw)
	if err := waitHTTP(ctx, base+"/healthz", gw); err != nil {
		return err
	}

	delay := d.o.delay
	if d.o.demo && !d.o.delaySet {
		delay = time.Second
	}
	var demo *system.Demo
	var first chan firstReply
	if d.o.demo {
		demo = &system.Demo{Base: base, Out: rawWriter{d.con}}
		first = make(chan firstReply, 1)
		step := system.DemoSteps()[0]
		d.con.line("demo", "the gateway runs, no service does: sending %s %s now; it waits in Kafka until the users service takes it", step.Method, step.Path)
		go func() {
			ex, err := demo.Send(ctx, step)
			first <- firstReply{ex, err}
		}()
	}
	if delay > 0 {
		d.con.line("dev", "starting the services in %v", delay)
		select {
		case <-ctx.Done():
			return d.shutdown(procs, nil)
		case <-time.After(delay):
		}
	}
	for _, name := range system.Services {
		p, err := d.spawn(exe, name, append([]string{"serve", name}, common...)...)
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}

	// Ready when every service answered a call through Kafka.
	conn, err := kafka.Dial(ctx, brokers, kafka.WithLogger(discardLogger()), kafka.WithContracts(contracts.Services()...))
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, name := range system.Services {
		if err := probe(ctx, conn, name, procs); err != nil {
			if ctx.Err() != nil {
				return d.shutdown(procs, nil)
			}
			return err
		}
	}
	d.ready(base, "Kafka "+strings.Join(brokers, ","))

	if d.o.demo {
		if err := d.runDemo(ctx, demo, first); err != nil {
			if ctx.Err() != nil {
				return d.shutdown(procs, nil)
			}
			return err
		}
	}
	d.banner(base, strings.Join(brokers, ","))

	exited := make(chan *child, len(procs))
	for _, p := range procs {
		go func() {
			<-p.done
			exited <- p
		}()
	}
	select {
	case <-ctx.Done():
		return d.shutdown(procs, nil)
	case p := <-exited:
		return d.shutdown(procs, fmt.Errorf("%s exited unexpectedly (%v); stopping everything", p.name, p.err))
	}
}

type firstReply struct {
	ex  *system.Exchange
	err error
}

// runDemo sends the demo's requests. first, when not nil, brings the reply
// to the first step, already sent.
func (d *dev) runDemo(ctx context.Context, demo *system.Demo, first chan firstReply) error {
	steps := system.DemoSteps()
	if first != nil {
		var r firstReply
		select {
		case r = <-first:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			return fmt.Errorf("demo: %w", r.err)
		}
		demo.Print(r.ex)
		if err := demo.Check(r.ex); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		d.con.line("demo", "answered after %v: the request waited in Kafka while the users service started", r.ex.Took.Round(time.Millisecond))
		steps = steps[1:]
	}
	if _, err := demo.Run(ctx, steps); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d.con.line("demo", "all %d requests answered as expected", len(system.DemoSteps()))
	return nil
}

func (d *dev) ready(base, transport string) {
	d.con.raw(d.con.bold(fmt.Sprintf("purista dev: ready in %.2fs — gateway %s, %s, services %s",
		time.Since(d.start).Seconds(), base, transport, strings.Join(system.Services, ", "))) + "\n")
}

func (d *dev) banner(base, brokers string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  API       %s/v1/users\n", base)
	fmt.Fprintf(&b, "  routes    %s/routes\n", base)
	fmt.Fprintf(&b, "  OpenAPI   %s/openapi.v3.json\n", base)
	fmt.Fprintf(&b, "  health    %s/readyz\n", base)
	fmt.Fprintf(&b, "  metrics   %s/metrics\n", base)
	if brokers != "" {
		fmt.Fprintf(&b, "  Kafka     %s   (purista call --brokers %s users.v1.UsersService/ListUsers)\n", brokers, brokers)
	}
	fmt.Fprintf(&b, "\n  try:  curl -s %s/v1/users -d '{\"email\":\"grace@example.com\",\"display_name\":\"Grace\"}'\n", base)
	b.WriteString("\nrunning; Ctrl-C stops everything\n")
	d.con.raw(b.String())
}

// child is a component process.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *lineWriter
	done  chan struct{}
	err   error
}

func (d *dev) spawn(exe, name string, args ...string) (*child, error) {
	cmd := exec.Command(exe, args...)
	out := d.con.writer(name)
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, out: out, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		_ = out.Close()
		close(c.done)
	}()
	return c, nil
}

// stop closes the child's standard input, which makes `purista serve
// -exit-with-parent` stop gracefully, and kills it if it has not stopped
// within the timeout.
func (c *child) stop(timeout time.Duration) error {
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not stop within %v and was killed", c.name, timeout)
	}
	return c.err
}

func stopAll(procs []*child) {
	for _, p := range procs {
		select {
		case <-p.done:
		default:
			_ = p.stop(10 * time.Second)
		}
	}
}

// shutdown stops the gateway first, so no new request comes in, then the
// services together; the broker stops when runKafka returns.
func (d *dev) shutdown(procs []*child, cause error) error {
	d.con.line("dev", "stopping")
	t := time.Now()
	var errs []error
	if cause != nil {
		errs = append(errs, cause)
	}
	if len(procs) > 0 {
		if err := procs[0].stop(15 * time.Second); err != nil && !interrupted(err) {
			errs = append(errs, fmt.Errorf("%s: %w", procs[0].name, err))
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range procs[min(1, len(procs)):] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.stop(15 * time.Second); err != nil && !interrupted(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	d.con.line("dev", "stopped cleanly in %v", time.Since(t).Round(time.Millisecond))
	return nil
}

// interrupted reports whether a child ended by the terminal's SIGINT before
// it could exit on its own (it normally exits 0 after a graceful stop).
func interrupted(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGINT {
			return true
		}
	}
	return false
}

// waitHTTP polls url until it answers 200, the child exits, or 30 s pass.
func waitHTTP(ctx context.Context, url string, c *child) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited before it served %s (%v): see its log above", c.name, url, c.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer %s after 30s", c.name, url)
		}
	}
}

// probe calls a service through Kafka until an instance answers.
func probe(ctx context.Context, conn *kafka.ClientConn, name string, procs []*child) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := system.Probe(pctx, conn, name)
		cancel()
		if err == nil {
			return nil
		}
		for _, p := range procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited (%v): see its log above", p.name, p.err)
			default:
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s service does not answer through Kafka after 60s: %v", name, err)
		}
	}
}
