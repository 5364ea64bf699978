package security_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	kgoscram "github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista/examples/contracts"
	notificationsv1 "github.com/purista-go/purista/examples/contracts/gen/notifications/v1"
	ordersv1 "github.com/purista-go/purista/examples/contracts/gen/orders/v1"
	"github.com/purista-go/purista/examples/services/orders/ordersvc"
	"github.com/purista-go/purista/examples/system"
	"github.com/purista-go/purista/internal/kafkatest/cluster"
	"github.com/purista-go/purista/internal/syncbuf"
	"github.com/purista-go/purista/transport/kafka"
)

// envSecurity gates the suite: it starts a JVM and builds the CLI.
const envSecurity = "PURISTA_SECURITY"

// principals of the example system; each gets a SCRAM user of that name.
var principals = []string{"users", "orders", "notifications", "gateway"}

// aclFile is the example system's acl: section (examples/purista.yaml).
const aclFile = `principals:
  - principal: User:users
    serves: [users.v1.UsersService]
  - principal: User:orders
    serves: [orders.v1.OrdersService]
    calls: [users.v1.UsersService]
  - principal: User:notifications
    serves: [notifications.v1.NotificationsService]
  - principal: User:gateway
    gateway: true
`

const (
	ordersTopic   = "purista.rpc.orders.v1.OrdersService"
	ordersGroup   = "purista.orders.v1.OrdersService"
	ordersStore   = "purista.replies.orders.v1.OrdersService"
	usersStore    = "purista.replies.users.v1.UsersService"
	orderPlaced   = "purista.event.orders.v1.OrderPlaced"
	notifSubGroup = "purista.sub.notifications.v1.NotificationsService.orders.v1.OrderPlaced"
)

type env struct {
	c         *cluster.Cluster
	passwords map[string]string
	dir       string
	cli       string
	image     string
}

func TestSecuredSystem(t *testing.T) {
	if os.Getenv(envSecurity) != "1" {
		t.Skip("security suite skipped: set " + envSecurity + "=1 (make security) to start a secured Kafka broker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	e := &env{dir: t.TempDir(), passwords: map[string]string{}}
	c, err := cluster.Launch(ctx, cluster.Config{Nodes: 1, Dir: filepath.Join(e.dir, "kafka"), Security: &cluster.Security{}, Logf: t.Logf})
	if err != nil {
		if errors.Is(err, cluster.ErrNoJava) && os.Getenv(cluster.EnvRequire) != "1" {
			t.Skipf("security suite skipped: %v", err)
		}
		t.Log(cluster.TailLogs(filepath.Join(e.dir, "kafka"), 60))
		t.Fatal(err)
	}
	e.c = c
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Tails(15))
		}
		c.Close()
	})

	e.createUsers(ctx, t)
	e.buildCLI(ctx, t)

	// Provisioning and ACLs as an operator does it: the CLI, as the admin.
	out := e.purista(ctx, t, "admin", "topics", "ensure", "--image", e.image, "--partitions", "1", "--replication-factor", "1")
	t.Logf("purista topics ensure:\n%s", out)
	aclPath := filepath.Join(e.dir, "acl.yaml")
	if err := os.WriteFile(aclPath, []byte(aclFile), 0o644); err != nil {
		t.Fatal(err)
	}
	// As many ACLs as the plan lists: it grows with the contracts.
	planned := 0
	for _, line := range strings.Split(e.purista(ctx, t, "admin", "acl", "plan", "--image", e.image, "--acl-file", aclPath), "\n") {
		if strings.HasPrefix(line, "User:") {
			planned++
		}
	}
	out = e.purista(ctx, t, "admin", "acl", "apply", "--image", e.image, "--acl-file", aclPath)
	t.Logf("purista acl apply:\n%s", out)
	if want := fmt.Sprintf("%d ACLs: %d created, 0 already existed", planned, planned); planned == 0 || !strings.Contains(out, want) {
		t.Fatalf("first acl apply: want %q (the plan's %d ACLs), got:\n%s", want, planned, out)
	}
	// Again: nothing new reaches the cluster's metadata. (This broker
	// answers DescribeAcls with an empty list, so apply cannot tell what
	// exists and reports every ACL as created; the controller's log shows
	// what it stored.)
	before := e.aclRecords(t)
	e.purista(ctx, t, "admin", "acl", "apply", "--image", e.image, "--acl-file", aclPath)
	if after := e.aclRecords(t); after != before || before != planned {
		t.Errorf("ACL records in the metadata log: %d after the first acl apply, %d after the second; want %d both times", before, after, planned)
	}

	// ACLs reach the broker from the controller a moment after apply
	// returns: wait until each principal sees a topic it may use.
	e.waitACLs(ctx, t, map[string]string{
		"users": "purista.rpc.users.v1.UsersService", "orders": ordersTopic,
		"notifications": "purista.rpc.notifications.v1.NotificationsService", "gateway": "purista.rpc.users.v1.UsersService",
	})

	// The example system, every component as its own principal.
	gatewayID := "gateway-" + randomID()
	demo := e.runSystem(ctx, t, gatewayID)

	t.Run("wrong password", func(t *testing.T) { e.wrongPassword(ctx, t) })
	t.Run("untrusted certificate", func(t *testing.T) { e.untrustedCA(ctx, t) })

	cases := e.forbidden(gatewayID)
	denied := 0
	for _, fc := range cases {
		t.Run(fc.name, func(t *testing.T) {
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			start := time.Now()
			err := fc.act(actx)
			took := time.Since(start)
			switch {
			case err == nil:
				t.Errorf("%s: allowed, want an authorization error", fc.name)
			case actx.Err() != nil:
				t.Errorf("%s: no answer within 20 s (took %v): %v", fc.name, took, err)
			case !isDenied(err, fc.names...):
				t.Errorf("%s: failed, but not with an authorization error naming %v: %v", fc.name, fc.names, err)
			default:
				denied++
				t.Logf("denied in %v: %v", took.Round(time.Millisecond), err)
			}
		})
	}

	// The system still works after every attempt: read the order and
	// the notification again.
	var transcript strings.Builder
	demo.Out = &transcript
	if _, err := demo.Run(ctx, system.DemoSteps()[2:5]); err != nil {
		t.Errorf("the system after the forbidden acts: %v\n%s", err, transcript.String())
	}

	fmt.Printf("figure: acl_forbidden_cases_denied %d\n", denied)
	fmt.Printf("figure: acl_forbidden_cases_tried %d\n", len(cases))
}

// createUsers makes a SCRAM-SHA-512 user per principal, as the admin.
func (e *env) createUsers(ctx context.Context, t *testing.T) {
	cl := e.kgoClient(t, "admin")
	defer cl.Close()
	var ups []kadm.UpsertSCRAM
	for _, p := range principals {
		e.passwords[p] = randomID() + randomID()
		ups = append(ups, kadm.UpsertSCRAM{User: p, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: e.passwords[p]})
	}
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, ups)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("create SCRAM users: %v", err)
	}
	// SCRAM credentials reach the broker through the metadata log: wait
	// until every user can log in.
	for _, p := range principals {
		deadline := time.Now().Add(30 * time.Second)
		for {
			pc := e.kgoClient(t, p)
			err := pc.Ping(ctx)
			pc.Close()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("user %s cannot log in: %v", p, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func (e *env) password(user string) string {
	if user == "admin" {
		_, pw := e.c.Admin()
		return pw
	}
	return e.passwords[user]
}

func (e *env) kgoClient(t *testing.T, user string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.c.Brokers()...), kgo.DialTLSConfig(e.c.TLSConfig()),
		kgo.SASL(scram.Auth{User: user, Pass: e.password(user)}.AsSha512Mechanism()), kgo.RequestRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// kafkaClient is a raw kafka-go client authenticated as user: what a
// compromised process could use instead of purista's transport.
func (e *env) kafkaClient(user string) *kafkago.Client {
	m, _ := kafkaScram(user, e.password(user))
	return &kafkago.Client{Addr: kafkago.TCP(e.c.Brokers()...), Timeout: 10 * time.Second,
		Transport: &kafkago.Transport{TLS: e.c.TLSConfig(), SASL: m, DialTimeout: 5 * time.Second}}
}

// options are the transport options of a component authenticated as user.
func (e *env) options(user, clientID string) []kafka.Option {
	return []kafka.Option{
		kafka.WithTLS(e.c.TLSConfig()),
		kafka.WithSASLScram("SCRAM-SHA-512", user, e.password(user)),
		kafka.WithClientID(clientID),
	}
}

// buildCLI builds cmd/purista and writes the contracts image it reads.
func (e *env) buildCLI(ctx context.Context, t *testing.T) {
	e.cli = filepath.Join(e.dir, "purista")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", e.cli, "github.com/purista-go/purista/cmd/purista")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/purista: %v\n%s", err, out)
	}
	img, err := contracts.Image()
	if err != nil {
		t.Fatal(err)
	}
	e.image = filepath.Join(e.dir, "contracts.binpb")
	if err := os.WriteFile(e.image, img, 0o644); err != nil {
		t.Fatal(err)
	}
}

// purista runs the CLI as user, configured through the environment as a
// Kubernetes Job would be, and fails the test if it fails.
func (e *env) purista(ctx context.Context, t *testing.T, user string, args ...string) string {
	t.Helper()
	out, err := e.puristaErr(ctx, user, e.password(user), args...)
	if err != nil {
		t.Fatalf("purista %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *env) puristaErr(ctx context.Context, user, password string, args ...string) (string, error) {
	pwFile := filepath.Join(e.dir, "password-"+user+"-"+randomID())
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return "", err
	}
	defer os.Remove(pwFile)
	cmd := exec.CommandContext(ctx, e.cli, args...)
	cmd.Env = append(os.Environ(),
		"PURISTA_BROKERS="+strings.Join(e.c.Brokers(), ","),
		"PURISTA_KAFKA_TLS_CA="+e.c.CAFile(),
		"PURISTA_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
		"PURISTA_KAFKA_SASL_USERNAME="+user,
		"PURISTA_KAFKA_SASL_PASSWORD_FILE="+pwFile,
	)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// runSystem starts the gateway and the three services, each as its own
// principal, runs the demo through the gateway, and returns its URL.
func (e *env) runSystem(ctx context.Context, t *testing.T, gatewayID string) *system.Demo {
	var logs syncbuf.Buffer
	logger := func(component string) *slog.Logger {
		return slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", component)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	t.Cleanup(func() {
		stop()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("component stopped with an error: %v", err)
		}
		if t.Failed() {
			t.Logf("component logs:\n%s", logs.String())
		}
	})
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gk := system.Kafka{Brokers: e.c.Brokers(), Options: e.options("gateway", gatewayID)}
	run(system.Gateway, func() error {
		return system.ServeGateway(runCtx, ln, gk, system.GatewayConfig{}, logger(system.Gateway))
	})
	for _, name := range system.Services {
		k := system.Kafka{Brokers: e.c.Brokers(), Options: e.options(name, name+"-"+randomID())}
		if name == system.Orders {
			k = e.flagsConfig(t, name) // as the example binary reads them
		}
		run(name, func() error { return system.ServeService(runCtx, name, k, logger(name)) })
	}
	var transcript strings.Builder
	d := &system.Demo{Base: "http://" + ln.Addr().String(), Out: &transcript}
	if _, err := d.Run(ctx, system.DemoSteps()); err != nil {
		t.Fatalf("the example system on the secured broker: %v\ntranscript:\n%s\nlogs:\n%s", err, transcript.String(), logs.String())
	}
	t.Logf("the example system works on the secured broker, every component as its own principal:\n%s", transcript.String())
	return d
}

// flagsConfig is the Kafka configuration of component name from the
// command-line flags of its example binary (examples/services/...):
// TLS with the CA file, SCRAM with a password file, the principal's
// client id prefix.
func (e *env) flagsConfig(t *testing.T, name string) system.Kafka {
	pwFile := filepath.Join(e.dir, name+".password")
	if err := os.WriteFile(pwFile, []byte(e.password(name)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var cfg system.Config
	cfg.RegisterFlags(fs, false)
	if err := fs.Parse([]string{"-brokers", strings.Join(e.c.Brokers(), ","), "-kafka-tls-ca", e.c.CAFile(),
		"-kafka-sasl-mechanism", "SCRAM-SHA-512", "-kafka-sasl-username", name, "-kafka-sasl-password-file", pwFile,
		"-client-id-prefix", name + "-"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg.Kafka()
}

// waitACLs waits until every user may describe its topic.
func (e *env) waitACLs(ctx context.Context, t *testing.T, topics map[string]string) {
	for user, topic := range topics {
		cl := e.kgoClient(t, user)
		start := time.Now()
		for {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, cl)
			if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 {
				break
			}
			if time.Since(start) > 30*time.Second {
				cl.Close()
				t.Fatalf("User:%s still may not describe %s 30 s after acl apply (%v)", user, topic, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cl.Close()
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Logf("the ACLs of User:%s took effect %v after acl apply returned", user, d.Round(time.Millisecond))
		}
	}
}

// aclRecords counts the ACL records the controller stored.
func (e *env) aclRecords(t *testing.T) int {
	b, err := os.ReadFile(e.c.LogFile(0))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Replayed AccessControlEntryRecord")
}

type forbiddenCase struct {
	name  string
	names []string // what the error must name
	act   func(ctx context.Context) error
}

// forbidden lists the acts of docs/security.md's threat model. Raw
// kafka-go requests stand for a compromised process with any client; the
// transport's calls for a buggy one using purista.
func (e *env) forbidden(gatewayID string) []forbiddenCase {
	gatewayReply := kafka.ReplyTopicPrefix + gatewayID
	return []forbiddenCase{
		{"users reads the orders request topic", []string{ordersTopic}, func(ctx context.Context) error {
			return e.fetch(ctx, "users", ordersTopic)
		}},
		{"users reads the gateway's reply topic", []string{gatewayReply}, func(ctx context.Context) error {
			return e.fetch(ctx, "users", gatewayReply)
		}},
		{"gateway reads the orders reply store", []string{ordersStore}, func(ctx context.Context) error {
			return e.fetch(ctx, "gateway", ordersStore)
		}},
		{"users joins the orders consumer group", []string{ordersGroup}, func(ctx context.Context) error {
			return joinGroup(ctx, e.kafkaClient("users"), ordersGroup, ordersTopic)
		}},
		{"users joins the notifications subscription group", []string{notifSubGroup}, func(ctx context.Context) error {
			return joinGroup(ctx, e.kafkaClient("users"), notifSubGroup, orderPlaced)
		}},
		{"users writes into the orders request topic", []string{ordersTopic}, func(ctx context.Context) error {
			return e.produce(ctx, "users", ordersTopic)
		}},
		{"notifications publishes OrderPlaced, an orders event", []string{orderPlaced}, func(ctx context.Context) error {
			return e.produce(ctx, "notifications", orderPlaced)
		}},
		{"orders writes into the users reply store", []string{usersStore}, func(ctx context.Context) error {
			return e.produce(ctx, "orders", usersStore)
		}},
		{"gateway creates a topic", []string{"purista.rpc.evil.v1.Evil"}, func(ctx context.Context) error {
			resp, err := e.kafkaClient("gateway").CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: "purista.rpc.evil.v1.Evil", NumPartitions: 1, ReplicationFactor: 1}}})
			if err != nil {
				return err
			}
			return named(resp.Errors["purista.rpc.evil.v1.Evil"], "create topic purista.rpc.evil.v1.Evil")
		}},
		{"users deletes the gateway's reply topic", []string{gatewayReply}, func(ctx context.Context) error {
			resp, err := e.kafkaClient("users").DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{gatewayReply}})
			if err != nil {
				return err
			}
			return named(resp.Errors[gatewayReply], "delete topic "+gatewayReply)
		}},
		{"orders grants itself the users request topic", []string{"User:orders"}, func(ctx context.Context) error {
			resp, err := e.kafkaClient("orders").CreateACLs(ctx, &kafkago.CreateACLsRequest{ACLs: []kafkago.ACLEntry{{
				ResourceType: kafkago.ResourceTypeTopic, ResourceName: "purista.rpc.users.v1.UsersService", ResourcePatternType: kafkago.PatternTypeLiteral,
				Principal: "User:orders", Host: "*", Operation: kafkago.ACLOperationTypeRead, PermissionType: kafkago.ACLPermissionTypeAllow,
			}}})
			if err != nil {
				return err
			}
			return named(errors.Join(resp.Errors...), "create an ACL for User:orders")
		}},
		// Through purista's transport: the caller gets PERMISSION_DENIED.
		{"orders calls the notifications service (not in its calls)", []string{"User:orders", "purista.rpc.notifications.v1.NotificationsService"}, func(ctx context.Context) error {
			conn, err := kafka.Dial(ctx, e.c.Brokers(), clientOpts(e.options("orders", "orders-"+randomID()))...)
			if err != nil {
				return fmt.Errorf("dial as orders: %w", err)
			}
			defer conn.Close()
			_, err = notificationsv1.NewNotificationsServiceClient(conn).ListNotifications(ctx, &notificationsv1.ListNotificationsRequest{UserId: "u1"})
			return err
		}},
		{"gateway dials with a client id of the orders principal", []string{"User:gateway", kafka.ReplyTopicPrefix + "orders-"}, func(ctx context.Context) error {
			conn, err := kafka.Dial(ctx, e.c.Brokers(), clientOpts(e.options("gateway", "orders-"+randomID()))...)
			if err == nil {
				conn.Close()
			}
			return err
		}},
		{"users serves the orders service", []string{"User:users", ordersTopic}, func(ctx context.Context) error {
			srv, err := kafka.NewServer(e.c.Brokers(), serverOpts(e.options("users", "users-"+randomID()), kafka.WithContracts(ordersv1.OrdersService_PuristaService))...)
			if err != nil {
				return err
			}
			ordersv1.RegisterOrdersServiceServer(srv, ordersvc.New(nil, slog.New(slog.DiscardHandler)))
			return srv.Serve(ctx)
		}},
	}
}

// fetch reads partition 0 of topic from its start as user, with
// franz-go (kafka-go's Client reports a denied topic as "not found").
func (e *env) fetch(ctx context.Context, user, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.c.Brokers()...), kgo.DialTLSConfig(e.c.TLSConfig()),
		kgo.SASL(scram.Auth{User: user, Pass: e.password(user)}.AsSha512Mechanism()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			return named(errs[0].Err, "fetch "+topic)
		}
		if fs.NumRecords() > 0 {
			return nil // read: allowed
		}
	}
	return ctx.Err()
}

// produce writes one record to topic as user, with franz-go.
func (e *env) produce(ctx context.Context, user, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.c.Brokers()...), kgo.DialTLSConfig(e.c.TLSConfig()),
		kgo.SASL(scram.Auth{User: user, Pass: e.password(user)}.AsSha512Mechanism()))
	if err != nil {
		return err
	}
	defer cl.Close()
	return named(cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("forged")}).FirstErr(), "produce to "+topic)
}

// joinGroup joins group as a consumer of topic.
func joinGroup(ctx context.Context, cl *kafkago.Client, group, topic string) error {
	resp, err := cl.JoinGroup(ctx, &kafkago.JoinGroupRequest{GroupID: group, SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second,
		ProtocolType: "consumer", Protocols: []kafkago.GroupProtocol{{Name: "range", Metadata: kafkago.GroupProtocolSubscription{Topics: []string{topic}}}}})
	if err != nil {
		return fmt.Errorf("join group %s: %w", group, err)
	}
	return named(resp.Error, "join group "+group)
}

// named prefixes a broker's error with the act, as a caller would log it.
func named(err error, act string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", act, err)
}

// isDenied reports whether err is an authorization failure whose message
// names every one of names.
func isDenied(err error, names ...string) bool {
	authz := status.Code(err) == codes.PermissionDenied ||
		errors.Is(err, kafkago.TopicAuthorizationFailed) ||
		errors.Is(err, kafkago.GroupAuthorizationFailed) ||
		errors.Is(err, kafkago.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed)
	if !authz {
		return false
	}
	for _, n := range names {
		if !strings.Contains(err.Error(), n) {
			return false
		}
	}
	return true
}

// wrongPassword: a component and the CLI with a wrong password fail at
// once, saying the authentication failed.
func (e *env) wrongPassword(ctx context.Context, t *testing.T) {
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	opts := []kafka.Option{kafka.WithTLS(e.c.TLSConfig()), kafka.WithSASLScram("SCRAM-SHA-512", "gateway", "not-the-password"),
		kafka.WithClientID("gateway-" + randomID())}
	_, err := kafka.Dial(dctx, e.c.Brokers(), clientOpts(opts)...)
	if err == nil || !strings.Contains(err.Error(), "SASL") || dctx.Err() != nil {
		t.Errorf("kafka.Dial with a wrong password: %v; want a SASL authentication error at once", err)
	} else {
		t.Logf("kafka.Dial: %v", err)
	}
	out, err := e.puristaErr(dctx, "admin", "not-the-password", "topics", "plan", "--image", e.image)
	if err == nil || !strings.Contains(out, "SASL") {
		t.Errorf("purista topics plan with a wrong password: %v\n%s\nwant a SASL authentication error", err, out)
	} else {
		t.Logf("purista topics plan: %s", strings.TrimSpace(out))
	}
}

// untrustedCA: a client that does not trust the brokers' CA fails at once,
// saying the certificate is not trusted.
func (e *env) untrustedCA(ctx context.Context, t *testing.T) {
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	opts := []kafka.Option{kafka.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}), kafka.WithSASLScram("SCRAM-SHA-512", "gateway", e.password("gateway")),
		kafka.WithClientID("gateway-" + randomID())}
	_, err := kafka.Dial(dctx, e.c.Brokers(), clientOpts(opts)...)
	if err == nil || !strings.Contains(err.Error(), "certificate") || dctx.Err() != nil {
		t.Errorf("kafka.Dial without the CA: %v; want a certificate error at once", err)
	} else {
		t.Logf("kafka.Dial: %v", err)
	}
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func kafkaScram(user, password string) (sasl.Mechanism, error) {
	return kgoscram.Mechanism(kgoscram.SHA512, user, password)
}

// clientOpts are opts with the example contracts, as client options.
func clientOpts(opts []kafka.Option) []kafka.ClientOption {
	out := []kafka.ClientOption{kafka.WithContracts(contracts.Services()...)}
	for _, o := range opts {
		out = append(out, o)
	}
	return out
}

func serverOpts(opts []kafka.Option, more ...kafka.Option) []kafka.ServerOption {
	var out []kafka.ServerOption
	for _, o := range append(opts, more...) {
		out = append(out, o)
	}
	return out
}
