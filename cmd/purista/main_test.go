package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"log/slog"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/embedded"
	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/gateway"
	"github.com/purista-go/purista/internal/kafkatest"
)

// The test binary doubles as the purista binary: `purista dev` starts its
// components by running its own executable, which in a test is this binary.
const asCLI = "PURISTA_TEST_RUN_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(asCLI) == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cli runs the command line in this process.
func cli(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// cliWants runs the command line in this process, which must succeed, and
// checks that its output holds every one of want.
func cliWants(t *testing.T, args []string, want ...string) string {
	t.Helper()
	out, stderr, code := cli(t, args...)
	if code != 0 {
		t.Fatalf("purista %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("purista %s prints no %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

func TestVersion(t *testing.T) {
	out, _, code := cli(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "purista "+purista.Version+" ") {
		t.Errorf("purista --version: exit %d, %q", code, out)
	}
}

func TestRoutes(t *testing.T) {
	img := image(t)
	out, _, code := cli(t, "routes", "--image", img)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"POST  /v1/users                          users.v1.UsersService/CreateUser",
		"GET   /v1/users/{user_id}/orders         orders.v1.OrdersService/ListOrders",
		"GET   /v1/orders/{order_id}              orders.v1.OrdersService/GetOrder                         purista.rpc.orders.v1.OrdersService                2s       no",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("purista routes lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 10 {
		t.Errorf("purista routes printed %d lines, want a header and 9 routes:\n%s", n, out)
	}

	out, _, code = cli(t, "routes", "--image", img, "--json")
	var routes []gateway.RouteInfo
	if err := json.Unmarshal([]byte(out), &routes); code != 0 || err != nil {
		t.Fatalf("purista routes --json: exit %d, %v:\n%s", code, err, out)
	}
	found := false
	for _, r := range routes {
		if r.FullMethod == "/users.v1.UsersService/CreateUser" {
			found = r.Public && r.Verb == "POST" && r.Path == "/v1/users" && r.Timeout == "5s"
		}
	}
	if len(routes) != 9 || !found {
		t.Errorf("purista routes --json: want 8 routes with the public POST /v1/users (5s):\n%s", out)
	}
}

// broker starts an embedded broker and, when services are named, those
// services over Kafka, for the duration of the test.
func broker(t *testing.T, services ...string) string {
	t.Helper()
	b, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.Join(b.Addrs(), ",")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		b.Close()
	})
	if len(services) > 0 {
		img := image(t)
		if _, stderr, code := cli(t, "topics", "ensure", "--image", img, "--brokers", addr); code != 0 {
			t.Fatalf("topics ensure: %s", stderr)
		}
	}
	for _, name := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := system.ServeService(ctx, name, system.Kafka{Brokers: b.Addrs()}, slog.New(slog.DiscardHandler)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	return addr
}

func TestTopicsEnsure(t *testing.T) {
	img := image(t)
	addr := broker(t)
	cliWants(t, []string{"topics", "ensure", "--image", img, "--brokers", addr},
		"purista.rpc.orders.v1.OrdersService                    6           created",
		"purista.rpc.users.v1.UsersService                      3           created",
		"purista.event.orders.v1.OrderPlaced                    3           created",
		"purista.dlq.notifications.v1.NotificationsService      3           created",
		"8 topics: 8 created, 0 already existed")
	// Idempotent: a second run changes nothing and says so.
	out, stderr, code := cli(t, "topics", "ensure", "--image", img, "--brokers", addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "purista.rpc.users.v1.UsersService                      3           exists\n") ||
		!strings.Contains(out, "8 topics: 0 created, 8 already existed\n") {
		t.Errorf("second run:\n%s", out)
	}
	// A prefix is another set of topics.
	out, _, _ = cli(t, "topics", "ensure", "--image", img, "--brokers", addr, "--topic-prefix", "staging.")
	if !strings.Contains(out, "staging.purista.rpc.users.v1.UsersService") || !strings.Contains(out, "8 created") {
		t.Errorf("with --topic-prefix:\n%s", out)
	}
}

func TestCall(t *testing.T) {
	img := image(t)
	addr := broker(t, system.Users)
	out, stderr, code := cli(t, "call", "--image", img, "--brokers", addr, "users.v1.UsersService/CreateUser",
		`{"user":{"email":"ada@example.com","display_name":"Ada"}}`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var created struct {
		User struct{ UserID, Email string } `json:"user"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.User.Email != "ada@example.com" {
		t.Fatalf("reply %q: %v", out, err)
	}
	id := (func() string {
		var m map[string]map[string]any
		_ = json.Unmarshal([]byte(out), &m)
		s, _ := m["user"]["userId"].(string)
		return s
	})()

	// "/pkg.Service/Method" and "pkg.Service.Method" name it too; -H sends metadata.
	out, stderr, code = cli(t, "call", "--image", img, "--brokers", addr, "-H", "x-request-id: cli-test", "-v",
		"/users.v1.UsersService/GetUser", `{"user_id":"`+id+`"}`)
	if code != 0 || !strings.Contains(out, `"displayName": "Ada"`) {
		t.Fatalf("GetUser: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "→ /users.v1.UsersService/GetUser on topic purista.rpc.users.v1.UsersService, deadline 2s") ||
		!strings.Contains(stderr, "← OK in") {
		t.Errorf("-v printed:\n%s", stderr)
	}

	// A status error: the code, the message and the details, exit 1.
	out, stderr, code = cli(t, "call", "--image", img, "--brokers", addr, "users.v1.UsersService.GetUser", `{"user_id":"u-nobody"}`)
	if code != 1 || out != "" || !strings.Contains(stderr, `purista: users.v1.UsersService/GetUser answered NOT_FOUND: users.v1.User "u-nobody" does not exist`) ||
		!strings.Contains(stderr, `"@type": "type.googleapis.com/google.rpc.ResourceInfo"`) {
		t.Errorf("NOT_FOUND: exit %d\nstdout %q\nstderr:\n%s", code, out, stderr)
	}

	// A service that does not run: the deadline passes and the hint says why.
	_, stderr, code = cli(t, "call", "--image", img, "--brokers", addr, "--timeout", "300ms", "orders.v1.OrdersService/GetOrder", `{"order_id":"o-1"}`)
	if code != 1 || !strings.Contains(stderr, "answered DEADLINE_EXCEEDED") ||
		!strings.Contains(stderr, "no instance of orders.v1.OrdersService answered within 300ms on topic purista.rpc.orders.v1.OrdersService") {
		t.Errorf("no orders service: exit %d\n%s", code, stderr)
	}
}

// TestCallImageOfOneFile: an image of one contract is all call needs.
func TestCallImageOfOneFile(t *testing.T) {
	addr := broker(t, system.Users)
	img := image(t, "users/v1/users.proto")
	out, stderr, code := cli(t, "call", "--image", img, "--brokers", addr,
		"users.v1.UsersService/CreateUser", `{"user":{"email":"grace@example.com","display_name":"Grace"}}`)
	if code != 0 || !strings.Contains(out, `"email": "grace@example.com"`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	out, _, code = cli(t, "call", "--image", img, "--list")
	if code != 0 || !strings.Contains(out, "users.v1.UsersService/ListUsers") || strings.Contains(out, "orders.v1") {
		t.Errorf("--list with an image of users.proto:\n%s", out)
	}
}

// TestDescribe checks that the contracts read from an image are described
// as protoc-gen-purista describes them in generated code: topics,
// partitions, timeouts, idempotency, partition keys, HTTP bindings, events
// and subscriptions.
func TestDescribe(t *testing.T) {
	c, err := contractFlags{image: image(t)}.load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.services) != len(contracts.Services()) || len(c.events) != len(contracts.Events()) {
		t.Fatalf("read %d services and %d events, generated %d and %d", len(c.services), len(c.events), len(contracts.Services()), len(contracts.Events()))
	}
	for _, want := range contracts.Services() {
		got, ok := c.service(want.Name)
		if !ok || got.RequestTopic != want.RequestTopic || got.Partitions != want.Partitions ||
			got.ReplicationFactor != want.ReplicationFactor || len(got.Methods) != len(want.Methods) {
			t.Errorf("described %+v, generated %+v", got, want)
			continue
		}
		for i, m := range got.Methods {
			w := want.Methods[i]
			if m.FullMethod != w.FullMethod || m.Timeout != w.Timeout || m.Idempotent != w.Idempotent || m.Public != w.Public ||
				m.PartitionKeyField != w.PartitionKeyField || eventName(m.Event) != eventName(w.Event) || eventName(m.Subscribe) != eventName(w.Subscribe) ||
				!reflect.DeepEqual(m.HTTP, w.HTTP) || m.ClientStreaming != w.ClientStreaming || m.ServerStreaming != w.ServerStreaming {
				t.Errorf("method %s: described %+v, generated %+v", w.FullMethod, m, w)
			}
		}
	}
	for i, want := range contracts.Events() {
		got := c.events[i]
		if got.Name != want.Name || got.Topic != want.Topic || got.Partitions != want.Partitions ||
			got.ReplicationFactor != want.ReplicationFactor || got.PartitionKeyField != want.PartitionKeyField {
			t.Errorf("event: described %+v, generated %+v", got, want)
		}
	}

	md, err := c.method("users.v1.UsersService/GetUser")
	if err != nil {
		t.Fatal(err)
	}
	users, _ := c.service("users.v1.UsersService")
	req := dynamicpb.NewMessage(md.Input())
	req.ProtoReflect().Set(md.Input().Fields().ByName("user_id"), protoreflect.ValueOfString("u-42"))
	if k := users.Methods[1].PartitionKey(req); string(k) != "u-42" {
		t.Errorf("partition key of a dynamic GetUserRequest: %q", k)
	}
}

func eventName(e *purista.Event) string {
	if e == nil {
		return ""
	}
	return e.Name
}

// image writes the example contracts named (all when none is), with
// their imports, as the image `buf build -o FILE` makes, and returns its
// path. The CLI links no contract: the tests hand it theirs.
func image(t *testing.T, files ...string) string {
	t.Helper()
	b, err := contracts.Image(files...)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "contracts.binpb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCallErrors(t *testing.T) {
	img := image(t)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no method", []string{"call", "--image", img}, 2, "name the method to call: purista call package.Service/Method '<json>' (purista call --list shows them)"},
		{"not a method name", []string{"call", "--image", img, "GetUser"}, 2, `"GetUser" is no method name: write package.Service/Method, e.g. users.v1.UsersService/GetUser`},
		{"unknown service", []string{"call", "--image", img, "shop.v1.ShopService/Buy"}, 2,
			"unknown service shop.v1.ShopService in " + img + "; the services are: notifications.v1.NotificationsService, orders.v1.OrdersService, users.v1.UsersService"},
		{"unknown method", []string{"call", "--image", img, "users.v1.UsersService/getuser"}, 2,
			"unknown method getuser of users.v1.UsersService (did you mean users.v1.UsersService/GetUser?); its methods are: CreateUser, GetUser, ListUsers"},
		{"bad JSON", []string{"call", "--image", img, "users.v1.UsersService/GetUser", `{"id":"u-1"}`}, 2,
			"unknown field \"id\"\nusers.v1.GetUserRequest has the fields:\n  user_id (string)"},
		{"broken JSON", []string{"call", "--image", img, "users.v1.UsersService/GetUser", `{"user_id":`}, 2, "the request is not valid JSON for users.v1.GetUserRequest"},
		{"bad header", []string{"call", "--image", img, "-H", "novalue", "users.v1.UsersService/GetUser"}, 2, `header "novalue": write key:value`},
		{"broker unreachable", []string{"call", "--image", img, "--brokers", "127.0.0.1:1", "users.v1.UsersService/GetUser", `{"user_id":"u-1"}`}, 1,
			"cannot reach a Kafka broker at 127.0.0.1:1 (dial tcp 127.0.0.1:1: connect: connection refused).\nStart your system with `purista dev` (its embedded broker listens on 127.0.0.1:9092), or point --brokers or PURISTA_BROKERS at a running cluster"},
		{"topics: broker unreachable", []string{"topics", "ensure", "--image", img, "--brokers", "127.0.0.1:1"}, 1, "cannot reach a Kafka broker at 127.0.0.1:1"},
		{"not an image", []string{"call", "--image", "main.go", "--list"}, 1, "main.go is not a buf image or binary FileDescriptorSet"},
		{"no image file", []string{"routes", "--image", "nothing.binpb"}, 2, "reading the contracts image: open nothing.binpb: no such file or directory (make one with `buf build -o nothing.binpb`)"},
		{"no contracts", []string{"routes"}, 2, "no contracts: run purista in the directory of your buf.yaml (or of a purista.yaml that names the contracts), " +
			"pass --contracts DIR (a buf module or workspace), or pass --image FILE made with `buf build -o FILE`"},
		{"no buf.yaml", []string{"topics", "plan", "--contracts", "."}, 2, ". has no buf.yaml: pass the directory of your contracts' buf.yaml with --contracts, or an image with --image"},
		{"unknown flag", []string{"routes", "--jsn"}, 2, "unknown flag: --jsn"},
		{"dev: no purista.yaml", []string{"dev"}, 2, "no purista.yaml here: purista dev runs the processes it lists"},
		{"dev: bad log level", []string{"dev", "--log-level", "loud"}, 2, `--log-level "loud": use debug, info, warn or error`},
		{"init: bad name", []string{"init", "service", "Order-Service"}, 2, `name "Order-Service": use lower-case letters and digits`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := cli(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("purista %s: exit %d, stderr:\n%s\nwant exit %d and:\n%s", strings.Join(c.args, " "), code, stderr, c.code, c.want)
			}
		})
	}
}

// devProcess runs `purista dev` as the user does, in a process group of its
// own as a terminal's foreground job is, and returns its output so far
// once it printed until.
type devProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func startDev(t *testing.T, dir, until string, args ...string) *devProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"dev", "--http", "127.0.0.1:0", "--broker-port", "0", "--dashboard", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), asCLI+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, done: make(chan struct{})}
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if strings.Contains(sc.Text(), until) {
				once.Do(func() { close(seen) })
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	select {
	case <-seen:
	case <-p.done:
		t.Fatalf("purista dev exited before printing %q:\n%s", until, p.output())
	case <-time.After(5 * time.Minute):
		t.Fatalf("purista dev did not print %q within 5 minutes:\n%s", until, p.output())
	}
	return p
}

func (p *devProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// interrupt sends SIGINT to the whole process group, as Ctrl-C in a
// terminal does, and waits for purista dev to exit.
func (p *devProcess) interrupt(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("purista dev did not stop within 30s of Ctrl-C:\n%s", p.output())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("purista dev exited with %d after Ctrl-C:\n%s", code, p.output())
	}
	if !strings.Contains(p.output(), "stopped cleanly") {
		t.Errorf("purista dev did not say it stopped cleanly:\n%s", p.output())
	}
}

var readyRE = regexp.MustCompile(`purista dev: ready in ([0-9.]+)s — gateway (http://[^,]+),`)

// TestDevDemo is `make demo`: purista dev --demo runs the example system
// from examples/purista.yaml, as it runs a user's, every process built from
// its package and started on its own, the services after the gateway and
// the demo driver.
func TestDevDemo(t *testing.T) {
	p := startDev(t, "../../examples", "Ctrl-C stops everything", "--demo", "--image", image(t))
	out := p.output()
	m := readyRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ready line:\n%s", out)
	}
	t.Logf("ready in %ss", m[1])
	for _, want := range []string{
		"created purista.rpc.users.v1.UsersService (3 partitions)",
		"demo: sending POST /v1/users now",
		"starting users in 1s",
		"$ curl -s -X POST 'http://",
		"HTTP 404 Not Found",
		"HTTP 400 Bad Request",
		"demo: all 8 requests answered as expected",
		"demo finished",
		"kafka: serving services=[orders.v1.OrdersService]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// The system keeps answering after the demo, as curl would see it.
	resp, err := http.Get(m[2] + "/v1/users?page_size=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ada@example.com") {
		t.Errorf("GET /v1/users after the demo: %d %s", resp.StatusCode, body)
	}
	p.interrupt(t)
	for _, c := range []string{"gateway", "users", "orders", "notifications"} {
		if !regexp.MustCompile(`(?m)` + c + ` +│ ` + c + ` stopped$`).MatchString(p.output()) {
			t.Errorf("%s did not log that it stopped", c)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", p.output())
	}
}

// TestDevMonolith is make demo MONOLITH=1: one process, no broker.
func TestDevMonolith(t *testing.T) {
	p := startDev(t, "../../examples", "Ctrl-C stops everything", "-f", "purista.monolith.yaml", "--demo", "--image", image(t))
	out := p.output()
	if readyRE.FindStringSubmatch(out) == nil || !strings.Contains(out, "no broker, processes monolith, demo") ||
		!strings.Contains(out, "demo: all 8 requests answered as expected") || strings.Contains(out, "created purista.rpc") {
		t.Errorf("output:\n%s", out)
	}
	p.interrupt(t)
}

func TestTopicsGC(t *testing.T) {
	addr := broker(t)
	// A reply topic whose last record is an hour old: its client is gone.
	dead := "purista.reply.crashed-gateway"
	kafkatest.CreateTopic(t, []string{addr}, dead, 1)
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: dead, Transport: &kafkago.Transport{}}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafkago.Message{Value: []byte("old"), Time: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := cli(t, "topics", "gc", "--brokers", addr, "--dry-run")
	if code != 0 || !strings.Contains(out, "would delete "+dead) || !strings.Contains(out, "would delete 1 idle topic\n") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = cli(t, "topics", "gc", "--brokers", addr)
	if code != 0 || !strings.Contains(out, "deleted "+dead) {
		t.Fatalf("gc: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := cli(t, "topics", "gc", "--brokers", addr, "--idle", "1m"); code == 0 || !strings.Contains(stderr, "5 minutes or more") {
		t.Fatalf("--idle 1m: exit %d, %s", code, stderr)
	}
}

// TestTopicsPlan: plan reports what ensure would create and how an
// existing topic differs from the contracts, and changes nothing.
func TestTopicsPlan(t *testing.T) {
	addr := broker(t)
	img := image(t)
	kafkatest.CreateTopic(t, []string{addr}, "purista.rpc.orders.v1.OrdersService", 2)
	plan := []string{"topics", "plan", "--image", img, "--brokers", addr}
	cliWants(t, plan,
		"purista.rpc.users.v1.UsersService                      3           default      -                                                    create",
		"purista.rpc.orders.v1.OrdersService                    2           1            -                                                    exists, differs: has 2 partitions, 6 wanted",
		"8 topics: ensure would create 7; 1 exist, 1 of them differ from the contracts")
	// Nothing was created.
	out, _, _ := cli(t, plan...)
	if !strings.Contains(out, "ensure would create 7") {
		t.Errorf("plan changed the cluster:\n%s", out)
	}
}
