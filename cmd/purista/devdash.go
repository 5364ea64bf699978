package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/purista-go/purista/internal/devdash"
	"github.com/purista-go/purista/transport/kafka"
)

// dashboard is the local web page of `purista dev` (internal/devdash): it
// receives the processes' spans over OTLP and shows them with the state of
// the system.
type dashboard struct {
	url   string
	store *devdash.Store
	srv   *http.Server

	mu    sync.Mutex
	procs []*child
	addrs map[string]string // process name → its gateway or ops URL
}

// startDashboard serves the dashboard on addr (a free port when the
// default is taken and addr was not chosen).
func (d *dev) startDashboard(brokers []string, c *contractSet) (*dashboard, error) {
	ln, err := net.Listen("tcp", d.o.dashboard)
	if err != nil && !d.o.dashboardSet {
		d.con.line("dev", "%s is taken (%v); the dashboard listens on a free port", d.o.dashboard, err)
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, fmt.Errorf("the dashboard cannot listen on %s (%v): pass another --dashboard address, or --dashboard off", d.o.dashboard, err)
	}
	db := &dashboard{url: "http://" + ln.Addr().String(), store: devdash.NewStore(20000), addrs: map[string]string{}}
	// The gateway's own route table, as `purista routes` shows it.
	g, err := describeGateway(c)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	var routes []devdash.Route
	for _, r := range g.Routes() {
		routes = append(routes, devdash.Route{Verb: r.Verb, Path: r.Path, Method: strings.TrimPrefix(r.FullMethod, "/")})
	}
	overview := func(ctx context.Context) devdash.Overview {
		o := devdash.Overview{Brokers: brokers, Routes: routes, Processes: db.processes()}
		if len(brokers) > 0 {
			groups, err := kafka.DescribeGroups(ctx, brokers, c.services, kafka.WithLogger(discardLogger()))
			if err != nil {
				o.GroupsError = err.Error()
			}
			o.Groups = groups
		}
		return o
	}
	db.srv = &http.Server{Handler: devdash.Handler(db.store, overview), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = db.srv.Serve(ln) }()
	return db, nil
}

// env returns the variables that make a process export its spans to the
// dashboard, unless the environment or the process's own (purista.yaml's
// env, own) already names an OTLP endpoint of the user's.
func (db *dashboard) env(name string, own map[string]string) []string {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if os.Getenv(k) != "" || own[k] != "" {
			return nil
		}
	}
	return []string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + db.url + "/v1/traces",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf",
		"OTEL_SERVICE_NAME=" + name,
		"OTEL_BSP_SCHEDULE_DELAY=200", // spans on the page within a fraction of a second
	}
}

func (db *dashboard) track(c *child, url string) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.procs = append(db.procs, c)
	db.addrs[c.name] = url
}

func (db *dashboard) processes() []devdash.Process {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]devdash.Process, 0, len(db.procs))
	for _, c := range db.procs {
		running := true
		select {
		case <-c.done:
			running = false
		default:
		}
		out = append(out, devdash.Process{Name: c.name, PID: c.cmd.Process.Pid, Running: running, URL: db.addrs[c.name]})
	}
	return out
}

func (db *dashboard) close() {
	if db == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = db.srv.Shutdown(ctx)
}
