package system_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/purista-go/purista/embedded"
	"github.com/purista-go/purista/examples/contracts"
	notificationsv1 "github.com/purista-go/purista/examples/contracts/gen/notifications/v1"
	ordersv1 "github.com/purista-go/purista/examples/contracts/gen/orders/v1"
	usersv1 "github.com/purista-go/purista/examples/contracts/gen/users/v1"
	"github.com/purista-go/purista/examples/services/notifications/notificationsvc"
	"github.com/purista-go/purista/examples/services/orders/ordersvc"
	"github.com/purista-go/purista/examples/services/users/usersvc"
	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/gateway"
	"github.com/purista-go/purista/internal/syncbuf"
	"github.com/purista-go/purista/transport/inproc"
	"github.com/purista-go/purista/transport/kafka"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestDemoKafka runs the demo flow over Kafka on the embedded broker, with
// every component as it runs in its own process (here: goroutines with a
// Kafka client or server each). The gateway starts first and the first
// request is sent before any service runs: it waits in Kafka.
func TestDemoKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	k := system.Kafka{Brokers: b.Addrs(), Options: []kafka.Option{kafka.WithTopicPrefix("demo-test.")}}
	if _, err := kafka.EnsureTopics(ctx, k.Brokers, contracts.Services(), contracts.Events(), k.Options...); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	logger := func(component string) *slog.Logger {
		return slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", component)
	}
	defer func() {
		if t.Failed() {
			t.Logf("component logs:\n%s", logs.String())
		}
	}()

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
			}
		}()
	}
	ln := listen(t)
	run(func() error {
		return system.ServeGateway(runCtx, ln, k, system.GatewayConfig{}, logger(system.Gateway))
	})

	var out strings.Builder
	d := &system.Demo{Base: "http://" + ln.Addr().String(), Out: &out}
	steps := system.DemoSteps()
	first := make(chan *system.Exchange, 1)
	firstErr := make(chan error, 1)
	go func() {
		ex, err := d.Send(ctx, steps[0])
		first <- ex
		firstErr <- err
	}()
	time.Sleep(300 * time.Millisecond) // the request is in Kafka; no service runs yet
	opsURL := map[string]string{}
	for _, name := range system.Services {
		ops := listen(t)
		opsURL[name] = "http://" + ops.Addr().String()
		run(func() error { return system.ServeService(runCtx, name, k, logger(name), system.WithOps(ops)) })
	}
	ex, err := <-first, <-firstErr
	if err != nil {
		t.Fatal(err)
	}
	d.Print(ex)
	if err := d.Check(ex); err != nil {
		t.Fatal(err)
	}
	if ex.Took < 200*time.Millisecond { // sent before the 300 ms sleep began; a little scheduling slack
		t.Errorf("the first request took %v: it should have waited for the users service", ex.Took)
	}
	exs, err := d.Run(ctx, steps[1:])
	t.Logf("demo transcript:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	checkPropagation(t, exs[0], logs.String())

	// Every service process answers its probes and shows its transport's
	// counters; the gateway's /metrics shows its Kafka client's.
	for name, u := range opsURL {
		for path, want := range map[string]string{
			"/healthz": `{"status":"ok"}`,
			"/readyz":  `{"status":"ready"}`,
			"/metrics": `purista_kafka_server_requests_answered_total{server="` + name + `"}`,
		} {
			if code, body := httpGet(t, u+path); code != 200 || !strings.Contains(body, want) {
				t.Errorf("%s %s = %d, want 200 with %s:\n%.400s", name, path, code, want, body)
			}
		}
	}
	if _, body := httpGet(t, opsURL[system.Orders]+"/metrics"); !regexp.MustCompile(`purista_kafka_client_calls_total\{client="orders"\} [1-9]`).MatchString(body) {
		t.Errorf("orders /metrics lacks the calls of its client to the users service:\n%s", body)
	}
	if _, body := httpGet(t, d.Base+"/metrics"); !regexp.MustCompile(`purista_kafka_client_calls_total\{client="gateway"\} [1-9]`).MatchString(body) {
		t.Errorf("gateway /metrics lacks its Kafka client's calls")
	}
	checkGrafana(t, checkMethodMetrics(t, d.Base, opsURL))

	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("component stopped with an error: %v", err)
	}
}

// TestDemoMonolith runs the same flow with every service and the gateway in
// one process on the in-process transport.
func TestDemoMonolith(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs syncbuf.Buffer
	logger := func(component string) *slog.Logger {
		return slog.New(slog.NewTextHandler(&logs, nil)).With("component", component)
	}
	runCtx, stop := context.WithCancel(ctx)
	ln := listen(t)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- system.ServeMonolith(runCtx, ln, system.GatewayConfig{}, logger, func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("monolith stopped: %v", err)
	}
	var out strings.Builder
	d := &system.Demo{Base: "http://" + ln.Addr().String(), Out: &out}
	exs, err := d.Run(ctx, system.DemoSteps())
	t.Logf("demo transcript:\n%s", out.String())
	if err != nil {
		t.Fatalf("%v\ncomponent logs:\n%s", err, logs.String())
	}
	checkPropagation(t, exs[1], logs.String())
	stop()
	if err := <-done; err != nil {
		t.Errorf("monolith stopped with an error: %v", err)
	}
}

// TestDemoGRPC runs the same flow in the third style: the services on a
// plain grpc.Server, the orders service calling users through a
// grpc.ClientConn, and the gateway in front of the same connection. gRPC
// has no events, so the orders service publishes OrderPlaced through an
// in-process channel, on which the same notifications service subscribes
// (a Kafka client would do as well).
func TestDemoGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	lis := listen(t)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	events := inproc.New(inproc.WithLogger(logger), inproc.WithContracts(notificationsv1.NotificationsService_PuristaService))
	defer events.Close()
	notifications := notificationsvc.New(logger.With("component", system.Notifications))
	srv := grpc.NewServer()
	usersv1.RegisterUsersServiceServer(srv, usersvc.New(logger.With("component", system.Users)))
	ordersv1.RegisterOrdersServiceServer(srv, ordersvc.New(conn, logger.With("component", system.Orders), ordersvc.WithPublisher(events)))
	notificationsv1.RegisterNotificationsServiceServer(srv, notifications)
	notificationsv1.RegisterNotificationsServiceServer(events, notifications) // its OrderPlaced subscription
	go func() { _ = srv.Serve(lis) }()
	defer srv.GracefulStop()

	g, err := system.NewGateway(conn, system.GatewayConfig{}, logger.With("component", system.Gateway))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- gateway.Serve(runCtx, ln, g) }()

	var out strings.Builder
	d := &system.Demo{Base: "http://" + ln.Addr().String(), Out: &out}
	exs, err := d.Run(ctx, system.DemoSteps())
	t.Logf("demo transcript:\n%s", out.String())
	if err != nil {
		t.Fatalf("%v\nlogs:\n%s", err, logs.String())
	}
	checkPropagation(t, exs[1], logs.String())
	stop()
	if err := <-done; err != nil {
		t.Errorf("gateway: %v", err)
	}
}

// checkPropagation checks that the users service, called by the orders
// service while placing the order, saw the gateway's request id and a
// deadline from the order's 5 s timeout.
func checkPropagation(t *testing.T, placeOrder *system.Exchange, logs string) {
	t.Helper()
	rid := placeOrder.Header.Get("X-Request-Id")
	if rid == "" {
		t.Fatal("the gateway returned no X-Request-Id")
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `msg="get user"`) && strings.Contains(line, "request_id="+rid) {
			i := strings.Index(line, "deadline_left=")
			left, err := time.ParseDuration(strings.Fields(line[i+len("deadline_left="):])[0])
			if i < 0 || err != nil || left <= 0 || left > 5*time.Second {
				t.Errorf("users saw the request without a deadline from the order's 5 s timeout: %s", line)
			}
			return
		}
	}
	t.Errorf("no users log line with the order's request id %s: the request id was not passed on\n%s", rid, logs)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// checkMethodMetrics reads the per-method series of the demo's calls from
// the /metrics of the gateway and the services: latency, time waited in
// the topic, results by code, events handled, consumer lag. The event
// reaches notifications asynchronously, so it polls, bounded.
func checkMethodMetrics(t *testing.T, gatewayURL string, opsURL map[string]string) (scraped string) {
	t.Helper()
	const orders, users = `method="CreateOrder",service="orders.v1.OrdersService"`, `method="GetUser",service="users.v1.UsersService"`
	want := map[string][]string{
		gatewayURL: {
			`purista_gateway_http_request_duration_seconds_count\{route="POST /v1/users/\{user_id\}/orders"\} [1-9]`,
			`purista_rpc_client_calls_total\{code="OK",` + orders + `\} [1-9]`,
			`purista_rpc_client_duration_seconds_count\{` + orders + `\} [1-9]`,
		},
		opsURL[system.Orders]: {
			`purista_rpc_server_calls_total\{code="OK",` + orders + `\} [1-9]`,
			`purista_rpc_server_duration_seconds_count\{` + orders + `\} [1-9]`,
			`purista_rpc_server_queue_wait_seconds_count\{` + orders + `\} [1-9]`,
			`purista_rpc_server_in_flight\{` + orders + `\} 0`,
			`purista_rpc_client_calls_total\{code="OK",` + users + `\} [1-9]`,
			`purista_kafka_consumer_lag_records\{group="demo-test.purista.orders.v1.OrdersService",partition="0",topic="demo-test.purista.rpc.orders.v1.OrdersService"\} 0`,
		},
		opsURL[system.Users]: {
			`purista_rpc_server_calls_total\{code="OK",` + users + `\} [1-9]`,
		},
		opsURL[system.Notifications]: {
			`purista_event_handled_total\{code="OK",event="orders.v1.OrderPlaced",method="OnOrderPlaced",service="notifications.v1.NotificationsService"\} [1-9]`,
			`purista_event_queue_wait_seconds_count\{event="orders.v1.OrderPlaced",method="OnOrderPlaced",service="notifications.v1.NotificationsService"\} [1-9]`,
			`purista_kafka_consumer_lag_records\{group="demo-test.purista.sub.notifications.v1.NotificationsService.orders.v1.OrderPlaced",partition="0",topic="demo-test.purista.event.orders.v1.OrderPlaced"\} 0`,
		},
	}
	for u, patterns := range want {
		var missing []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, body := httpGet(t, u+"/metrics")
			missing = missing[:0]
			for _, p := range patterns {
				if !regexp.MustCompile(`(?m)^` + p + `$`).MatchString(body) {
					missing = append(missing, p)
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				if len(missing) > 0 {
					t.Errorf("%s/metrics lacks series matching:\n%s\nit has:\n%s", u, strings.Join(missing, "\n"), grepPurista(body))
				}
				scraped += body
				break
			}
		}
	}
	return scraped
}

// checkGrafana checks the Grafana dashboard of examples/grafana against the
// series the system exported: every metric a panel queries is one, and
// every label it groups by is one of that metric's.
func checkGrafana(t *testing.T, scraped string) {
	t.Helper()
	b, err := os.ReadFile("../grafana/purista-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("purista-dashboard.json: %v", err)
	}
	metricRE := regexp.MustCompile(`\bpurista_[a-z0-9_]+`)
	byRE := regexp.MustCompile(`by \(([a-z_, ]+)\)`)
	queried := 0
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			metrics := metricRE.FindAllString(tg.Expr, -1)
			if len(metrics) == 0 {
				t.Errorf("panel %q queries no purista metric: %s", p.Title, tg.Expr)
			}
			for _, m := range metrics {
				queried++
				series := regexp.MustCompile(`(?m)^`+m+`\{[^}]*\}`).FindAllString(scraped, -1)
				if series == nil {
					series = regexp.MustCompile(`(?m)^`+m+` `).FindAllString(scraped, -1)
				}
				if series == nil {
					t.Errorf("panel %q queries %s, which no component exported", p.Title, m)
					continue
				}
				for _, by := range byRE.FindAllStringSubmatch(tg.Expr, -1) {
					for _, l := range strings.Split(by[1], ",") {
						if l = strings.TrimSpace(l); l != "le" && !strings.Contains(strings.Join(series, "\n"), l+`="`) {
							t.Errorf("panel %q groups %s by %s, a label it does not have", p.Title, m, l)
						}
					}
				}
			}
		}
	}
	if queried < 15 {
		t.Errorf("the dashboard queries %d metrics", queried)
	}
}

func grepPurista(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "purista_") && !strings.Contains(l, "_bucket{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
