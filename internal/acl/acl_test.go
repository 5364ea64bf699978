package acl_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/internal/acl"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// exampleConfig is the example system's principals (examples/purista.yaml).
func exampleConfig(prefix string) acl.Config {
	return acl.Config{
		TopicPrefix: prefix,
		Principals: []acl.Principal{
			{Principal: "User:users", Serves: []string{"users.v1.UsersService"}},
			{Principal: "User:orders", Serves: []string{"orders.v1.OrdersService"}, Calls: []string{"users.v1.UsersService"}},
			{Principal: "User:notifications", Serves: []string{"notifications.v1.NotificationsService"}},
			{Principal: "User:gateway", Gateway: true},
			{Principal: "User:ops", Calls: []string{"*"}, ClientIDPrefix: "ops."},
		},
	}
}

func TestPlanGolden(t *testing.T) {
	for _, tc := range []struct{ name, prefix string }{{"example", ""}, {"example-prefixed", "staging."}} {
		t.Run(tc.name, func(t *testing.T) {
			acls, err := acl.Plan(contracts.Services(), contracts.Events(), exampleConfig(tc.prefix))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := acl.Print(&buf, acls); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/acl -update)", err)
			}
			if buf.String() != string(want) {
				t.Errorf("plan differs from %s (go test ./internal/acl -update after checking):\n%s", golden, buf.String())
			}
		})
	}
}

// TestPlanLeastPrivilege checks the rules of docs/security.md on the plan
// itself, whatever its formatting: who may read and write what.
func TestPlanLeastPrivilege(t *testing.T) {
	acls, err := acl.Plan(contracts.Services(), contracts.Events(), exampleConfig(""))
	if err != nil {
		t.Fatal(err)
	}
	may := func(principal string, op acl.Operation, r acl.ResourceType, name string) bool {
		for _, a := range acls {
			if a.Principal != principal || a.Operation != op || a.Resource != r {
				continue
			}
			if a.Name == name || (a.Pattern == acl.Prefixed && strings.HasPrefix(name, a.Name)) {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		principal string
		op        acl.Operation
		r         acl.ResourceType
		name      string
		want      bool
	}{
		{"User:orders", acl.Read, acl.Topic, "purista.rpc.orders.v1.OrdersService", true},
		{"User:orders", acl.Read, acl.Group, "purista.orders.v1.OrdersService", true},
		{"User:orders", acl.Write, acl.Topic, "purista.rpc.users.v1.UsersService", true},
		{"User:orders", acl.Write, acl.Topic, "purista.rpc.notifications.v1.NotificationsService", false},
		{"User:orders", acl.Write, acl.Topic, "purista.event.orders.v1.OrderPlaced", true},
		{"User:orders", acl.Read, acl.Topic, "purista.reply.orders-7f", true},
		{"User:orders", acl.Read, acl.Topic, "purista.reply.gateway-1", false},
		{"User:orders", acl.Write, acl.Topic, "purista.reply.gateway-1", true}, // answering the gateway
		{"User:users", acl.Read, acl.Topic, "purista.rpc.orders.v1.OrdersService", false},
		{"User:users", acl.Read, acl.Group, "purista.orders.v1.OrdersService", false},
		{"User:users", acl.Write, acl.Topic, "purista.rpc.orders.v1.OrdersService", false},
		{"User:users", acl.Write, acl.Topic, "purista.event.orders.v1.OrderPlaced", false},
		{"User:users", acl.Create, acl.Topic, "purista.reply.users-1", false}, // calls nobody
		{"User:notifications", acl.Read, acl.Topic, "purista.event.orders.v1.OrderPlaced", true},
		{"User:notifications", acl.Read, acl.Group, "purista.sub.notifications.v1.NotificationsService.orders.v1.OrderPlaced", true},
		{"User:notifications", acl.Write, acl.Topic, "purista.dlq.notifications.v1.NotificationsService", true},
		{"User:notifications", acl.Write, acl.Topic, "purista.event.orders.v1.OrderPlaced", false},
		{"User:gateway", acl.Write, acl.Topic, "purista.rpc.orders.v1.OrdersService", true},
		{"User:gateway", acl.Read, acl.Topic, "purista.rpc.orders.v1.OrdersService", false},
		{"User:gateway", acl.Read, acl.Topic, "purista.reply.gateway-1", true},
		{"User:gateway", acl.Read, acl.Topic, "purista.reply.orders-1", false},
		{"User:gateway", acl.Write, acl.Topic, "purista.replies.orders.v1.OrdersService", false},
		{"User:ops", acl.Write, acl.Topic, "purista.rpc.notifications.v1.NotificationsService", true},
		{"User:ops", acl.Read, acl.Topic, "purista.reply.ops.x", true},
	} {
		if got := may(c.principal, c.op, c.r, c.name); got != c.want {
			t.Errorf("%s %s %s %s: allowed %v, want %v", c.principal, c.op, c.r, c.name, got, c.want)
		}
	}
}

func TestPlanRefusesBadConfig(t *testing.T) {
	svcs, evs := contracts.Services(), contracts.Events()
	for _, c := range []struct {
		name string
		cfg  acl.Config
		want []string
	}{
		{"empty", acl.Config{}, []string{"no principals"}},
		{"unknown service", acl.Config{Principals: []acl.Principal{{Principal: "User:a", Serves: []string{"x.v1.Nope"}}}},
			[]string{"serves x.v1.Nope, which the contracts do not declare"}},
		{"served twice", acl.Config{Principals: []acl.Principal{
			{Principal: "User:a", Serves: []string{"users.v1.UsersService"}},
			{Principal: "User:b", Serves: []string{"users.v1.UsersService"}}}},
			[]string{"which User:a serves too"}},
		{"bad principal", acl.Config{Principals: []acl.Principal{{Principal: "orders", Calls: []string{"*"}}}}, []string{"e.g. User:orders"}},
		{"overlapping prefixes", acl.Config{Principals: []acl.Principal{
			{Principal: "User:orders", Calls: []string{"*"}},
			{Principal: "User:orders-admin", Calls: []string{"*"}}}},
			[]string{`client id prefix "orders-" of User:orders is a prefix of "orders-admin-" of User:orders-admin`}},
		{"does nothing", acl.Config{Principals: []acl.Principal{{Principal: "User:idle"}}}, []string{"serves nothing and calls nothing"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := acl.Plan(svcs, evs, c.cfg)
			if err == nil || !acl.IsConfigError(err) {
				t.Fatalf("Plan = %v, want a configuration error", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestPlanStreams: a principal serving a streaming service owns its
// stream control topics; its callers may write to them, nobody else.
func TestPlanStreams(t *testing.T) {
	svc := &purista.Service{Name: "feed.v1.FeedService", Methods: []*purista.Method{{Name: "Watch", FullMethod: "/feed.v1.FeedService/Watch", ServerStreaming: true}}}
	other := &purista.Service{Name: "x.v1.X", Methods: []*purista.Method{{Name: "Do", FullMethod: "/x.v1.X/Do"}}}
	acls, err := acl.Plan([]*purista.Service{svc, other}, nil, acl.Config{Principals: []acl.Principal{
		{Principal: "User:feed", Serves: []string{svc.Name}},
		{Principal: "User:x", Serves: []string{other.Name}},
		{Principal: "User:watcher", Calls: []string{svc.Name}},
		{Principal: "User:bystander", Calls: []string{other.Name}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range acls {
		if strings.HasPrefix(a.Name, "purista.stream.") {
			got = append(got, a.String())
		}
	}
	want := []string{
		"User:feed CREATE topic:prefixed purista.stream.feed-",
		"User:feed READ topic:prefixed purista.stream.feed-",
		"User:feed WRITE topic:prefixed purista.stream.feed-",
		"User:feed DELETE topic:prefixed purista.stream.feed-",
		"User:watcher WRITE topic:prefixed purista.stream.feed-",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stream ACLs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
