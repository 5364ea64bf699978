package kafka_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/purista-go/purista/embedded"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// TestTLSAndSCRAM serves and calls over TLS with SASL/SCRAM-SHA-512, and
// checks that a wrong password is refused with an error that says so.
func TestTLSAndSCRAM(t *testing.T) {
	cert, pool := kafkatest.SelfSigned(t)
	b, err := embedded.Start(
		embedded.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		embedded.WithSASL(embedded.SASLScramSHA512, "svc", "s3cret"),
		embedded.WithSASL(embedded.SASLPlain, "plain-user", "plain-pass"),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clientTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	opts := []kafka.Option{kafka.WithTLS(clientTLS), kafka.WithSASLScram("SCRAM-SHA-512", "svc", "s3cret"),
		kafka.WithEnsureTopics(1, 1), kafka.WithLogger(quiet), kafka.WithTopicPrefix("sec."), contracts}
	var srvOpts []kafka.ServerOption
	var cliOpts []kafka.ClientOption
	for _, o := range opts {
		srvOpts, cliOpts = append(srvOpts, o), append(cliOpts, o)
	}
	srv, err := kafka.NewServer(b.Addrs(), srvOpts...)
	if err != nil {
		t.Fatal(err)
	}
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "tls"})
	go func() { _ = srv.Serve(context.Background()) }()
	defer srv.GracefulStop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.Dial(ctx, b.Addrs(), cliOpts...)
	if err != nil {
		t.Fatalf("Dial over TLS with SCRAM: %v", err)
	}
	defer conn.Close()
	resp, err := testingv1.NewEchoServiceClient(conn).Echo(ctx, &testingv1.EchoRequest{Message: "secure"})
	if err != nil || resp.GetServer() != "tls" {
		t.Fatalf("Echo over TLS = %v, %v", resp, err)
	}

	plain, err := kafka.Dial(ctx, b.Addrs(), kafka.WithTLS(clientTLS), kafka.WithSASLPlain("plain-user", "plain-pass"), kafka.WithLogger(quiet), kafka.WithTopicPrefix("sec."), contracts)
	if err != nil {
		t.Fatalf("Dial with SASL/PLAIN: %v", err)
	}
	_ = plain.Close()

	_, err = kafka.Dial(ctx, b.Addrs(), kafka.WithTLS(clientTLS), kafka.WithSASLScram("SCRAM-SHA-512", "svc", "wrong"), kafka.WithLogger(quiet))
	if err == nil || !strings.Contains(err.Error(), "cannot reach brokers") || !strings.Contains(err.Error(), "SASL") {
		t.Fatalf("Dial with a wrong password = %v, want an error naming the brokers and the SASL settings", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		brokers []string
		opts    []kafka.ClientOption
		want    string
	}{
		{"no brokers", nil, nil, "no broker addresses"},
		{"bad address", []string{"localhost"}, nil, "is not host:port"},
		{"bad client id", []string{"127.0.0.1:1"}, []kafka.ClientOption{kafka.WithClientID("has space")}, "client id"},
		{"bad sasl", []string{"127.0.0.1:1"}, []kafka.ClientOption{kafka.WithSASLScram("MD5", "u", "p")}, "use SCRAM-SHA-512 or SCRAM-SHA-256"},
		{"bad acks", []string{"127.0.0.1:1"}, []kafka.ClientOption{kafka.WithRequiredAcks(0)}, "use -1"},
		{"unreachable", []string{"127.0.0.1:1"}, []kafka.ClientOption{kafka.WithLogger(quiet)}, "cannot reach brokers 127.0.0.1:1"},
	} {
		_, err := kafka.Dial(ctx, tc.brokers, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Dial error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := kafka.NewServer([]string{"127.0.0.1:1"}, kafka.WithMaxConcurrentRequests(0)); err == nil || !strings.Contains(err.Error(), "at least 1") {
		t.Errorf("NewServer with 0 concurrency: %v", err)
	}
	srv, err := kafka.NewServer([]string{"127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(ctx); err == nil || !strings.Contains(err.Error(), "no services registered") {
		t.Errorf("Serve with no services = %v, want a message saying to register one", err)
	}
}

// A server refuses a service it has no contract for before it touches a
// broker: without it, it would read a guessed topic without the contract's
// timeouts and subscriptions.
func TestServerNeedsContracts(t *testing.T) {
	srv, err := kafka.NewServer([]string{"127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "s"})
	err = srv.Serve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "EchoService_PuristaService") || !strings.Contains(err.Error(), "kafka.WithContracts") {
		t.Errorf("Serve without the contract = %v, want an error naming the contract and kafka.WithContracts", err)
	}
}
