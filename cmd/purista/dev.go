package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/purista-go/purista/embedded"
	"github.com/purista-go/purista/transport/kafka"
)

type devOptions struct {
	file       string
	http       string
	brokerPort int
	demo       bool
	logLevel   string
	color      string
	cf         contractFlags
	dashboard  string

	httpSet, portSet, dashboardSet bool
}

func newDevCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run your system on this machine: embedded Kafka broker, its topics, gateway and services",
		Long: `dev runs the system purista.yaml describes (purista init service writes one)
with nothing installed but Go: an embedded Kafka-protocol broker in this
process, the request, event and dead-letter topics of your contracts
provisioned on it, and every process of the system — Go main packages,
built first, or commands — started in the order listed. Each gets the
broker's address in PURISTA_BROKERS; the gateway (http: true) its listen
address in PURISTA_HTTP_ADDR, processes with ops: true an address for
/readyz in PURISTA_OPS_ADDR; every process PURISTA_GATEWAY_URL. Their logs
are shown line by line, prefixed with the process name. Once the gateway
answers /healthz and every ops process /readyz, a "ready" line gives the
URLs and the routes.

purista.yaml:

  contracts: proto            # the directory of the contracts' buf.yaml (default: here)
  processes:
    - name: gateway
      package: ./cmd/gateway  # a Go main package (or command: [prog, args...])
      http: true
    - name: library
      package: ./cmd/library
      ops: true
      delay: 1s               # start it this long after the one before
      env: {LIBRARY_SEED: "3"}
    - name: demo
      package: ./cmd/demo
      demo: true              # started only with --demo; ends on its own
      raw: true               # its output unprefixed

Ctrl-C (or SIGTERM) stops everything gracefully: the gateway first, then the
other processes (SIGTERM, then SIGKILL after 15s), then the broker.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.httpSet = cmd.Flags().Changed("http")
			o.portSet = cmd.Flags().Changed("broker-port")
			o.dashboardSet = cmd.Flags().Changed("dashboard")
			if !slices.Contains([]string{"debug", "info", "warn", "error"}, o.logLevel) {
				return usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", o.logLevel)}
			}
			if o.color != "auto" && o.color != "always" && o.color != "never" {
				return usageError{fmt.Errorf("--color %q: use auto, always or never", o.color)}
			}
			p, err := loadProject(o.file)
			if errors.Is(err, os.ErrNotExist) {
				if cmd.Flags().Changed("file") {
					return usageError{fmt.Errorf("%s does not exist: pass the path of your purista.yaml", o.file)}
				}
				return usageError{errNoProject}
			}
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d := &dev{o: o, p: p, con: newConsole(cmd.OutOrStdout(), o.color, p.names()), start: time.Now()}
			return d.run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", projectFileName, "the system to run")
	f.StringVar(&o.http, "http", "127.0.0.1:8080", "gateway listen address (when the default is taken, a free port is used)")
	f.IntVar(&o.brokerPort, "broker-port", 9092, "embedded broker port on 127.0.0.1, 0 for a free one (when the default is taken, a free port is used)")
	f.BoolVar(&o.demo, "demo", false, "also start the processes marked demo: true (drivers that send example requests)")
	f.StringVar(&o.logLevel, "log-level", "info", "processes' log level, passed as PURISTA_LOG_LEVEL: debug, info, warn or error")
	f.StringVar(&o.color, "color", "auto", "color the process names: auto, always or never")
	f.StringVar(&o.dashboard, "dashboard", "127.0.0.1:8090", "dashboard listen address (calls, traces, lag); off for none (when the default is taken, a free port is used)")
	o.cf.add(f)
	return cmd
}

func (p *project) names() []string {
	names := []string{"dev", "broker", "topics", "build"}
	for _, pr := range p.Processes {
		names = append(names, pr.Name)
	}
	return names
}

type dev struct {
	o     devOptions
	p     *project
	con   *console
	start time.Time
	built string // the directory of the built processes
	dash  string // the dashboard's URL, "" without one
}

func (d *dev) removeBuilt() {
	if d.built != "" {
		_ = os.RemoveAll(d.built)
	}
}

// run builds the processes, starts the broker and provisions the topics,
// starts the processes and waits for them to be ready, then until ctx ends
// or a process fails.
func (d *dev) run(ctx context.Context) error {
	c, err := d.p.contractFlags(d.o.cf).load(ctx)
	if err != nil {
		return err
	}
	procs := d.selected()
	bins, err := d.build(ctx, procs)
	defer d.removeBuilt()
	if err != nil {
		return err
	}

	env := []string{"PURISTA_LOG_LEVEL=" + d.o.logLevel, "PURISTA_LOG_FORMAT=dev", "PURISTA_DEV=1"}
	var brokers []string
	if d.p.broker() {
		b, err := embedded.Start(embedded.WithPort(d.o.brokerPort))
		if err != nil && !d.o.portSet {
			d.con.line("broker", "port %d is taken (%v); using a free port", d.o.brokerPort, err)
			b, err = embedded.Start()
		}
		if err != nil {
			return fmt.Errorf("starting the embedded broker: %w (pass another --broker-port, 0 for a free one)", err)
		}
		defer b.Close()
		brokers = b.Addrs()
		d.con.line("broker", "embedded Kafka broker listening on %s", strings.Join(brokers, ","))
		env = append(env, "PURISTA_BROKERS="+strings.Join(brokers, ","))

		// Provision the topics from the contracts, as operators do with
		// `purista topics ensure`: brokers never create topics on their own.
		tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
		results, err := kafka.EnsureTopics(tctx, brokers, c.services, c.events, kafka.WithLogger(discardLogger()))
		tcancel()
		if err != nil {
			return fmt.Errorf("provisioning the topics of %s: %w", c.source, err)
		}
		for _, r := range results {
			d.con.line("topics", "created %s (%d partitions)", r.Name, r.Partitions)
		}
	}

	var db *dashboard
	if d.o.dashboard != "off" {
		if db, err = d.startDashboard(brokers, c); err != nil {
			return err
		}
		defer db.close()
		d.con.line("dev", "dashboard %s", db.url)
		d.dash = db.url
	}

	var base string
	for _, pr := range procs {
		if pr.HTTP {
			addr, err := d.httpAddr()
			if err != nil {
				return err
			}
			base = "http://" + addr
			break
		}
	}
	if base != "" {
		env = append(env, "PURISTA_GATEWAY_URL="+base)
	}

	var running []*child
	defer func() { stopAll(running) }()
	var waits []func() error
	for _, pr := range procs {
		if pr.delay > 0 {
			d.con.line("dev", "starting %s in %v", pr.Name, pr.delay)
			select {
			case <-ctx.Done():
				return d.shutdown(running, nil)
			case <-time.After(pr.delay):
			}
		}
		penv := slices.Clone(env)
		var ready, url string
		switch {
		case pr.HTTP:
			penv = append(penv, "PURISTA_HTTP_ADDR="+strings.TrimPrefix(base, "http://"))
			ready, url = base+"/healthz", base
		case pr.Ops:
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			penv = append(penv, "PURISTA_OPS_ADDR="+addr)
			ready, url = "http://"+addr+"/readyz", "http://"+addr
		}
		if db != nil {
			penv = append(penv, db.env(pr.Name, pr.Env)...)
		}
		for k, v := range pr.Env {
			penv = append(penv, k+"="+v)
		}
		ch, err := d.spawn(pr, bins[pr.Name], penv)
		if err != nil {
			return err
		}
		running = append(running, ch)
		if db != nil {
			db.track(ch, url)
		}
		if ready != "" {
			// The gateway is waited for before the next process starts, so
			// a driver started after it finds it up; services are waited
			// for together, below.
			if pr.HTTP {
				if err := waitHTTP(ctx, ready, ch, running); err != nil {
					return d.failed(ctx, running, err)
				}
			} else {
				waits = append(waits, func() error { return waitHTTP(ctx, ready, ch, running) })
			}
		}
	}
	for _, w := range waits {
		if err := w(); err != nil {
			return d.failed(ctx, running, err)
		}
	}
	d.ready(base, brokers)

	// The URLs follow the transcripts of drivers still running, so they
	// are not lost among them.
	pending := 0
	exited := make(chan *child, len(running))
	for _, p := range running {
		if p.once {
			pending++
		}
		go func() {
			<-p.done
			exited <- p
		}()
	}
	if pending == 0 {
		d.banner(base, brokers, c)
	}
	for {
		select {
		case <-ctx.Done():
			return d.shutdown(running, nil)
		case p := <-exited:
			if p.once && p.err == nil {
				d.con.line("dev", "%s finished", p.name)
				if pending--; pending == 0 {
					d.banner(base, brokers, c)
				}
				continue
			}
			// Ctrl-C reaches the whole process group: a child may stop
			// before this process has seen the signal. Give it a moment.
			select {
			case <-ctx.Done():
				return d.shutdown(running, nil)
			case <-time.After(250 * time.Millisecond):
			}
			return d.shutdown(running, fmt.Errorf("%s exited (%v); stopping everything", p.name, exitDescription(p.err)))
		}
	}
}

// failed stops everything after a process did not get ready; an interrupt
// meanwhile is a clean stop.
func (d *dev) failed(ctx context.Context, running []*child, err error) error {
	if ctx.Err() != nil {
		return d.shutdown(running, nil)
	}
	return d.shutdown(running, err)
}

func exitDescription(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// selected returns the processes to run: the demo drivers only with --demo.
func (d *dev) selected() []process {
	var out []process
	for _, pr := range d.p.Processes {
		if !pr.Demo || d.o.demo {
			out = append(out, pr)
		}
	}
	return out
}

// build compiles the Go packages of procs into a temporary directory,
// before anything starts, so that start order and delays mean what they
// say, and returns the command line of every process.
func (d *dev) build(ctx context.Context, procs []process) (map[string][]string, error) {
	out := map[string][]string{}
	var pkgs []process
	for _, pr := range procs {
		if pr.Package == "" {
			argv := slices.Clone(pr.Command)
			if strings.Contains(argv[0], "/") && !filepath.IsAbs(argv[0]) {
				argv[0] = filepath.Join(d.p.dir, argv[0])
			}
			out[pr.Name] = append(argv, pr.Args...)
			continue
		}
		pkgs = append(pkgs, pr)
	}
	if len(pkgs) == 0 {
		return out, nil
	}
	dir, err := os.MkdirTemp("", "purista-dev-")
	if err != nil {
		return nil, fmt.Errorf("a directory for the built processes: %w", err)
	}
	d.built = dir
	for _, pr := range pkgs {
		exe := filepath.Join(dir, pr.Name)
		d.con.line("build", "go build %s (%s)", pr.Package, pr.Name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", exe, pr.Package)
		cmd.Dir = d.p.dir
		w := d.con.writer("build")
		cmd.Stdout, cmd.Stderr = w, w
		err := cmd.Run()
		_ = w.Close()
		if err != nil {
			return nil, fmt.Errorf("building %s (%s, in %s) failed: %v; fix it, or the package: line of %s", pr.Name, pr.Package, d.p.dir, err, d.o.file)
		}
		out[pr.Name] = append([]string{exe}, pr.Args...)
	}
	return out, nil
}

// httpAddr picks the gateway's address: --http, or a free port when the
// default one is taken.
func (d *dev) httpAddr() (string, error) {
	ln, err := net.Listen("tcp", d.o.http)
	if err == nil {
		addr := ln.Addr().String()
		_ = ln.Close() // the gateway process binds it
		return addr, nil
	}
	if d.o.httpSet {
		return "", fmt.Errorf("the gateway cannot listen on %s (%v): pass another --http address", d.o.http, err)
	}
	addr, err2 := freeAddr()
	if err2 != nil {
		return "", err
	}
	d.con.line("dev", "%s is taken (%v); the gateway listens on %s instead", d.o.http, err, addr)
	return addr, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("no free port on 127.0.0.1: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}

func (d *dev) ready(base string, brokers []string) {
	var names []string
	for _, pr := range d.selected() {
		names = append(names, pr.Name)
	}
	transport := "no broker"
	if len(brokers) > 0 {
		transport = "Kafka " + strings.Join(brokers, ",")
	}
	gw := ""
	if base != "" {
		gw = "gateway " + base + ", "
	}
	d.con.raw(d.con.bold(fmt.Sprintf("purista dev: ready in %.2fs — %s%s, processes %s",
		time.Since(d.start).Seconds(), gw, transport, strings.Join(names, ", "))) + "\n")
}

// banner prints the URLs to try and the routes of the contracts.
func (d *dev) banner(base string, brokers []string, c *contractSet) {
	var b strings.Builder
	b.WriteString("\n")
	if d.dash != "" {
		fmt.Fprintf(&b, "  dashboard %s   (calls, traces, instances, lag)\n", d.dash)
	}
	if base != "" {
		fmt.Fprintf(&b, "  routes    %s/routes\n", base)
		fmt.Fprintf(&b, "  OpenAPI   %s/openapi.v3.json\n", base)
		fmt.Fprintf(&b, "  health    %s/readyz\n", base)
		for _, s := range c.services {
			for _, m := range s.Methods {
				for _, h := range m.HTTP {
					fmt.Fprintf(&b, "  %-9s %s%s   (%s)\n", h.Method, base, h.Pattern, strings.TrimPrefix(m.FullMethod, "/"))
				}
			}
		}
	}
	if len(brokers) > 0 {
		method := "<package.Service/Method>"
		if len(c.services) > 0 && len(c.services[0].Methods) > 0 {
			method = strings.TrimPrefix(c.services[0].Methods[0].FullMethod, "/")
		}
		fmt.Fprintf(&b, "  Kafka     %s   (purista call --brokers %s %s '{...}')\n", strings.Join(brokers, ","), strings.Join(brokers, ","), method)
	}
	b.WriteString("\nrunning; Ctrl-C stops everything\n")
	d.con.raw(b.String())
}

// child is a running process of the system.
type child struct {
	name string
	http bool
	once bool
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (d *dev) spawn(pr process, argv []string, env []string) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = d.p.dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childAttr()
	var out interface {
		Write([]byte) (int, error)
		Close() error
	} = d.con.writer(pr.Name)
	if pr.Raw {
		out = rawWriter{d.con}
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", pr.Name, strings.Join(argv, " "), err)
	}
	c := &child{name: pr.Name, http: pr.HTTP, once: pr.Once, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		_ = out.Close()
		close(c.done)
	}()
	return c, nil
}

// stop asks the process to stop with SIGTERM and kills it if it has not
// stopped within the timeout.
func (c *child) stop(timeout time.Duration) error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM and was killed", c.name, timeout)
	}
	return c.err
}

func stopAll(procs []*child) {
	for _, p := range procs {
		_ = p.stop(10 * time.Second)
	}
}

// shutdown stops the HTTP processes first, so no new request comes in,
// then the others together; the broker stops when run returns.
func (d *dev) shutdown(procs []*child, cause error) error {
	d.con.line("dev", "stopping")
	t := time.Now()
	var errs []error
	if cause != nil {
		errs = append(errs, cause)
	}
	var mu sync.Mutex
	stop := func(p *child) {
		if err := p.stop(15 * time.Second); err != nil && !stoppedBySignal(err) && !(p.once && p.err == nil) {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			mu.Unlock()
		}
	}
	var rest []*child
	for _, p := range procs {
		if p.http {
			stop(p)
		} else {
			rest = append(rest, p)
		}
	}
	var wg sync.WaitGroup
	for _, p := range rest {
		wg.Go(func() { stop(p) })
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	d.con.line("dev", "stopped cleanly in %v", time.Since(t).Round(time.Millisecond))
	return nil
}

// stoppedBySignal reports whether a process ended by the SIGTERM dev sent
// or the terminal's SIGINT before it could exit on its own: a process that
// does not handle them is stopped all the same.
func stoppedBySignal(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && (ws.Signal() == syscall.SIGINT || ws.Signal() == syscall.SIGTERM) {
			return true
		}
	}
	return false
}

// waitHTTP polls url until it answers 200, the process exits, or 60 s pass.
func waitHTTP(ctx context.Context, url string, c *child, running []*child) error {
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		for _, p := range running {
			select {
			case <-p.done:
				if !p.once || p.err != nil {
					return fmt.Errorf("%s exited (%v) before %s answered %s: see its log above", p.name, exitDescription(p.err), c.name, url)
				}
			default:
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer %s after 60s: does it serve there (see its log above)?", c.name, url)
		}
	}
}
