package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

func kcat(t *testing.T) string {
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("PURISTA_REQUIRE_TOOLS") == "1" {
			t.Fatal("kcat is not installed: install the Debian package kcat (.ci/run does)")
		}
		t.Skip("kcat not installed (apt-get install kcat): interop check skipped")
	}
	return path
}

// TestKcatReadsRequest has a third-party client, kcat, read a request record
// the transport wrote, and checks it shows the headers docs/protocol.md
// specifies.
func TestKcatReadsRequest(t *testing.T) {
	bin := kcat(t)
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		conn := e.Client(t, conformance.Options{})
		c := testingv1.NewEchoServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "x-user", "alice", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "idempotency-key", "op-1")
		// No server runs: the request waits in the topic and the call times out.
		_, _ = c.Echo(ctx, &testingv1.EchoRequest{Message: "from purista", Key: "k-42"})

		topic := e.prefix + "purista.rpc.purista.testing.v1.EchoService"
		cmd := exec.Command(bin, "-C", "-b", strings.Join(brokers, ","), "-t", topic, "-o", "beginning", "-e", "-q",
			"-f", "key=%k\\nheaders=%h\\nvalue=%s\\n--\\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatalf("kcat: %v", err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("kcat: %v\n%s", err, errb.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("kcat did not finish within 30s; stderr:\n%s", errb.String())
		}
		got := out.String()
		t.Logf("kcat read:\n%s", got)
		for _, want := range []string{
			"key=k-42",
			"purista-version=1",
			"purista-id=",
			"purista-method=/purista.testing.v1.EchoService/Echo",
			"purista-reply-to=" + conn.(*kafka.ClientConn).ReplyTopic(),
			"purista-deadline=",
			"content-type=application/protobuf",
			"purista-idempotency-key=op-1",
			"traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"purista-md-x-user=alice",
			"from purista",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("kcat output lacks %q", want)
			}
		}
	})
}

// TestBadRecordsDoNotStopThePartition writes records that are not purista
// requests, or not decodable, ahead of a real call on a one-partition topic:
// each is answered with an error or skipped, dead-lettered when it cannot be
// answered, and the call behind them is answered.
func TestBadRecordsDoNotStopThePartition(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		dlq := e.prefix + "dead-letters"
		kafkatest.CreateTopic(t, brokers, dlq, 1)
		topic := e.prefix + "purista.rpc.purista.testing.v1.EchoService"
		conn := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
		w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), Topic: topic, Balancer: &kafkago.Murmur2Balancer{}, BatchSize: 1, RequiredAcks: kafkago.RequireAll, Transport: &kafkago.Transport{}}
		defer w.Close()
		garbage := []kafkago.Message{
			{Key: []byte("k"), Value: []byte("not a purista request")},
			{Key: []byte("k"), Value: []byte{0xff, 0xff, 0xff}, Headers: []kafkago.Header{
				{Key: "purista-version", Value: []byte("1")}, {Key: "purista-id", Value: []byte("bad-body")},
				{Key: "purista-method", Value: []byte("/purista.testing.v1.EchoService/Echo")},
				{Key: "purista-reply-to", Value: []byte(conn.ReplyTopic())},
			}},
			{Key: []byte("k"), Value: nil, Headers: []kafkago.Header{
				{Key: "purista-version", Value: []byte("1")}, {Key: "purista-id", Value: []byte("gone")},
				{Key: "purista-method", Value: []byte("/purista.testing.v1.EchoService/Echo")},
				{Key: "purista-reply-to", Value: []byte(e.prefix + "no-such-reply-topic")},
			}},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.WriteMessages(ctx, garbage...); err != nil {
			t.Fatalf("write garbage: %v", err)
		}
		srv, err := kafka.NewServer(brokers, kafka.WithTopicPrefix(e.prefix), kafka.WithLogger(quiet), kafka.WithDeadLetterTopic(dlq), contracts)
		if err != nil {
			t.Fatal(err)
		}
		impl := &conformance.EchoServer{Name: "s"}
		testingv1.RegisterEchoServiceServer(srv, impl)
		go func() { _ = srv.Serve(context.Background()) }()
		defer srv.GracefulStop()
		c := testingv1.NewEchoServiceClient(conn)
		if _, err := c.Echo(metadata.AppendToOutgoingContext(ctx, "k", "v"), &testingv1.EchoRequest{Message: "after garbage", Key: "k"}); err != nil {
			t.Fatalf("call behind bad records: %v", err)
		}
		st := srv.Stats()
		if st.Malformed != 1 {
			t.Errorf("malformed = %d, want 1 (the record without purista headers)", st.Malformed)
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: dlq, Partition: 0, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read dead letter: %v", err)
		}
		if string(m.Value) != "not a purista request" || !hasHeader(m.Headers, "purista-dead-letter-reason") {
			t.Errorf("dead letter = %q with headers %v, want the original record and a reason", m.Value, m.Headers)
		}
		// The record with an empty body is a valid, empty EchoRequest: it
		// runs (its reply topic is gone, so the reply is dropped), in key
		// order before the good call.
		if got := impl.Messages(); len(got) != 2 || got[0] != "" || got[1] != "after garbage" {
			t.Errorf("handler ran for %q, want the empty request then the good call", got)
		}
		// A reply is written after its handler returned, so its failure may
		// be counted after the next call was answered.
		for deadline := time.Now().Add(5 * time.Second); srv.Stats().ReplyFailed == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if n := srv.Stats().ReplyFailed; n != 1 {
			t.Errorf("reply failures = %d, want 1 (the reply topic that does not exist)", n)
		}
	})
}

func hasHeader(hs []kafkago.Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

// TestRedeliveredRequestAnsweredFromDedup writes the same request record
// twice, as a redelivery after a crash would: an idempotent method runs once
// and both copies are answered with the same reply.
func TestRedeliveredRequestAnsweredFromDedup(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e := newEnv(t, brokers)
		srv := e.Server(t, conformance.Options{})
		impl := &conformance.EchoServer{Name: "s"}
		testingv1.RegisterEchoServiceServer(srv, impl)
		srv.Start(t)
		t.Cleanup(srv.Stop)
		conn := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		waitFor(t, testingv1.NewEchoServiceClient(conn), "s", 30*time.Second)

		replyTopic := conn.ReplyTopic()
		body, _ := proto.Marshal(&testingv1.CountRequest{})
		var msgs []kafkago.Message
		for i := range 2 {
			msgs = append(msgs, kafkago.Message{Value: body, Headers: []kafkago.Header{
				{Key: "purista-version", Value: []byte("1")},
				{Key: "purista-id", Value: []byte(fmt.Sprintf("redelivery-%d", i))},
				{Key: "purista-method", Value: []byte(testingv1.EchoService_Count_FullMethodName)},
				{Key: "purista-reply-to", Value: []byte(replyTopic + "-copy")},
				{Key: "purista-idempotency-key", Value: []byte("same-operation")},
			}})
		}
		kafkatest.CreateTopic(t, brokers, replyTopic+"-copy", 1)
		w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), Topic: e.prefix + "purista.rpc.purista.testing.v1.EchoService", BatchSize: 1, RequiredAcks: kafkago.RequireAll, Transport: &kafkago.Transport{}}
		defer w.Close()
		for _, m := range msgs {
			if err := w.WriteMessages(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: replyTopic + "-copy", Partition: 0, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		var counts []int64
		for range 2 {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			var resp testingv1.CountResponse
			if err := proto.Unmarshal(m.Value, &resp); err != nil {
				t.Fatal(err)
			}
			counts = append(counts, resp.GetCount())
		}
		if counts[0] != counts[1] {
			t.Errorf("redelivered request counted again: replies %v", counts)
		}
		if n := impl.Calls(); n != 2 { // the warm-up Echo and one Count
			t.Errorf("handler ran %d times, want 2 (warm-up Echo and one Count)", n)
		}
	})
}
