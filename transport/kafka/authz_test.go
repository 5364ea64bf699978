package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/transport/kafka"
)

// TestPermissionDenied: on a broker with ACLs (the embedded kfake), an act
// the principal may not do is PERMISSION_DENIED at once, naming the
// principal and the topic or group — a call to a request topic it may not
// write, and a server whose principal may read its request topic but not
// join its consumer group (Serve returns instead of retrying for ever).
// The real-broker version is internal/security (make security).
func TestPermissionDenied(t *testing.T) {
	const (
		topic = "purista.rpc.purista.testing.v1.EchoService"
		store = "purista.replies.purista.testing.v1.EchoService"
		group = "purista.purista.testing.v1.EchoService"
	)
	allow := func(rt kmsg.ACLResourceType, pattern kmsg.ACLResourcePatternType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: rt, Pattern: pattern, Name: name, Operation: op, Allow: true}
	}
	topicACL, prefixed, literal := kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, kmsg.ACLResourcePatternTypeLiteral
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "admin-pw"),
		// A caller: its reply topics, nothing else.
		kfake.User("SCRAM-SHA-512", "caller", "caller-pw",
			allow(topicACL, prefixed, "purista.reply.caller-", kmsg.ACLOperationCreate),
			allow(topicACL, prefixed, "purista.reply.caller-", kmsg.ACLOperationRead),
			allow(topicACL, prefixed, "purista.reply.caller-", kmsg.ACLOperationWrite),
			allow(topicACL, prefixed, "purista.reply.caller-", kmsg.ACLOperationDelete)),
		// A server: its topics, but not its group.
		kfake.User("SCRAM-SHA-512", "echo", "echo-pw",
			allow(topicACL, literal, topic, kmsg.ACLOperationRead),
			allow(topicACL, literal, store, kmsg.ACLOperationRead),
			allow(topicACL, literal, store, kmsg.ACLOperationWrite)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := []kafka.ClientOption{kafka.WithSASLScram("SCRAM-SHA-512", "admin", "admin-pw"), kafka.WithLogger(quiet), contracts,
		kafka.WithEnsureTopics(1, 1), kafka.WithClientID("admin-1")}
	if conn, err := kafka.Dial(ctx, brokers, admin...); err != nil { // provisions the request topics and stores
		t.Fatal(err)
	} else {
		conn.Close()
	}

	conn, err := kafka.Dial(ctx, brokers, kafka.WithSASLScram("SCRAM-SHA-512", "caller", "caller-pw"), kafka.WithLogger(quiet), contracts, kafka.WithClientID("caller-1"))
	if err != nil {
		t.Fatalf("Dial as caller: %v", err)
	}
	defer conn.Close()
	start := time.Now()
	_, err = testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{Message: "x"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "User:caller") || !strings.Contains(err.Error(), topic) {
		t.Errorf("Echo as caller = %v, want PERMISSION_DENIED naming User:caller and %s", err, topic)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the denied call took %v: it must fail at once, not at its deadline", took)
	}

	srv, err := kafka.NewServer(brokers, kafka.WithSASLScram("SCRAM-SHA-512", "echo", "echo-pw"), kafka.WithLogger(quiet), contracts, kafka.WithClientID("echo-1"))
	if err != nil {
		t.Fatal(err)
	}
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "echo"})
	err = srv.Serve(ctx)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "User:echo") || !strings.Contains(err.Error(), group) {
		t.Errorf("Serve as echo without its group = %v, want PERMISSION_DENIED naming User:echo and %s", err, group)
	}
	if ctx.Err() != nil {
		t.Errorf("Serve returned only at the test's deadline")
	}
}
