package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista/embedded"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/transport/kafka"
)

// echoPair serves an EchoServer the test can count on brokers.
func echoPair(t *testing.T, brokers []string) (*env, *server, *conformance.EchoServer, *kafka.ClientConn, testingv1.EchoServiceClient) {
	t.Helper()
	e := newEnv(t, brokers)
	srv := e.Server(t, conformance.Options{}).(*server)
	echo := &conformance.EchoServer{Name: "brokerlife"}
	testingv1.RegisterEchoServiceServer(srv, echo)
	srv.Start(t)
	t.Cleanup(srv.Stop)
	conn := e.Client(t, conformance.Options{}).(*kafka.ClientConn)
	c := testingv1.NewEchoServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "warm-up"}); err != nil {
		t.Fatalf("warm-up call: %v", err)
	}
	return e, srv, echo, conn, c
}

// ownBroker starts an embedded broker of the test's own, whose requests
// the test can intercept.
func ownBroker(t *testing.T) *embedded.Broker {
	t.Helper()
	b, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// closeConnsOnProduce makes the embedded broker close the connection of
// the next n produce requests to topic without storing them, as a broker
// does with a connection it closed for being idle, or when it restarts.
func closeConnsOnProduce(b *embedded.Broker, topic string, n int32) *atomic.Int32 {
	var closed atomic.Int32
	b.Kfake().ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		b.Kfake().KeepControl()
		req := r.(*kmsg.ProduceRequest)
		if len(req.Topics) != 1 || req.Topics[0].Topic != topic || closed.Load() >= n {
			return nil, nil, false
		}
		closed.Add(1)
		return nil, errors.New("connection closed by the test"), true
	})
	return &closed
}

// TestWritesSurviveClosedConnections: the broker closing connections (idle
// limit, restart, network reset) fails neither a request nor its reply:
// both are written again over a new connection, the handler runs once and
// the caller gets its answer.
func TestWritesSurviveClosedConnections(t *testing.T) {
	b := ownBroker(t)
	e, srv, echo, conn, c := echoPair(t, b.Addrs())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	reqClosed := closeConnsOnProduce(b, e.prefix+"purista.rpc.purista.testing.v1.EchoService", 2)
	replyClosed := closeConnsOnProduce(b, conn.ReplyTopic(), 2)
	before := echo.Calls()
	resp, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "through closed connections"})
	if err != nil || resp.GetMessage() != "through closed connections" {
		t.Fatalf("Echo while the broker closed connections = %v, %v; want the answer (closed %d request and %d reply writes; server %+v)", resp, err, reqClosed.Load(), replyClosed.Load(), srv.Stats())
	}
	if n := reqClosed.Load(); n != 2 {
		t.Errorf("broker closed %d request writes, want 2", n)
	}
	if n := replyClosed.Load(); n != 2 {
		t.Errorf("broker closed %d reply writes, want 2", n)
	}
	if n := echo.Calls() - before; n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	st := srv.Stats()
	t.Logf("server stats %+v client stats %+v", st, conn.Stats())
	if st.ReplyFailed != 0 || st.ProducerRetries < 2 {
		t.Errorf("server stats %+v: want no failed reply and at least 2 producer retries", st)
	}
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "again"}); err != nil {
		t.Fatal(err)
	}
}

// TestWriteGivesUpAtTheDeadline: a write that keeps failing is retried
// only while its caller waits: the call ends with DEADLINE_EXCEEDED at its
// deadline, not earlier with the connection's error and not later.
func TestWriteGivesUpAtTheDeadline(t *testing.T) {
	b := ownBroker(t)
	e, _, echo, _, c := echoPair(t, b.Addrs())
	closed := closeConnsOnProduce(b, e.prefix+"purista.rpc.purista.testing.v1.EchoService", 1<<30)
	before := echo.Calls()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "never written"})
	took := time.Since(start)
	if err == nil || took < 600*time.Millisecond || took > 3*time.Second {
		t.Fatalf("Echo while every write fails = %v after %v; want an error at the 700 ms deadline", err, took)
	}
	if closed.Load() < 3 {
		t.Errorf("the write was tried %d times within the deadline; want retries", closed.Load())
	}
	if echo.Calls() != before {
		t.Errorf("handler ran for a request never written")
	}
}

// requestRecord builds a request record by hand, as another client might.
func requestRecord(id, replyTo string, msg string) kafkago.Message {
	body, _ := proto.Marshal(&testingv1.EchoRequest{Message: msg})
	return kafkago.Message{Value: body, Headers: []kafkago.Header{
		{Key: "purista-version", Value: []byte("1")},
		{Key: "purista-id", Value: []byte(id)},
		{Key: "purista-method", Value: []byte("/purista.testing.v1.EchoService/Echo")},
		{Key: "purista-reply-to", Value: []byte(replyTo)},
		{Key: "purista-deadline", Value: []byte(strconv.FormatInt(time.Now().Add(20*time.Second).UnixMilli(), 10))},
	}}
}

func writeRecords(t *testing.T, brokers []string, topic string, msgs ...kafkago.Message) {
	t.Helper()
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), Topic: topic, BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireAll, Transport: tr}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write records to %s: %v", topic, err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 20 s waiting for %s", what)
		}
	}
}

// TestDuplicateRequestRecordRunsOnce: a request record written twice (a
// client's produce retried after a connection lost while the broker stored
// it) runs once and is answered once.
func TestDuplicateRequestRecordRunsOnce(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e, srv, echo, _, _ := echoPair(t, brokers)
		replyTo := e.prefix + "purista.reply.duplicates-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		kafkatest.CreateTopic(t, brokers, replyTo, 1)
		before := echo.Calls()
		rec := requestRecord("dup-1", replyTo, "twice")
		writeRecords(t, brokers, e.prefix+"purista.rpc.purista.testing.v1.EchoService", rec, rec)
		waitUntil(t, "the duplicate to be counted", func() bool { return srv.Stats().Duplicates == 1 })
		if n := echo.Calls() - before; n != 1 {
			t.Errorf("handler ran %d times for one request id, want 1", n)
		}
		// The duplicate is counted when it is fetched, which can be before
		// the first record's reply is written.
		waitUntil(t, "the reply", func() bool { return recordCount(t, brokers, replyTo) >= 1 })
		if n := recordCount(t, brokers, replyTo); n != 1 {
			t.Errorf("%d replies written for one request id, want 1", n)
		}
	})
}

// recordCount returns how many records partition 0 of topic holds.
func recordCount(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	conn, err := kafkago.DialLeader(context.Background(), "tcp", brokers[0], topic, 0)
	if err != nil {
		t.Fatalf("dial %s: %v", topic, err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		t.Fatalf("offsets of %s: %v", topic, err)
	}
	return last - first
}

// TestReplyToOtherTopicsRefused: a request whose purista-reply-to is not a
// reply topic by the protocol's naming rule is refused: nothing is written
// to that topic, the handler does not run, the record is counted and
// committed.
func TestReplyToOtherTopicsRefused(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		e, srv, echo, _, c := echoPair(t, brokers)
		reqTopic := e.prefix + "purista.rpc.purista.testing.v1.EchoService"
		before, malformed := echo.Calls(), srv.Stats().Malformed
		sizeBefore := partitionRecords(t, brokers, reqTopic)
		writeRecords(t, brokers, reqTopic,
			requestRecord("bad-reply-to-1", reqTopic, "into a request topic"),
			requestRecord("bad-reply-to-2", e.prefix+"purista.reply.", "empty client id"),
			requestRecord("bad-reply-to-3", e.prefix+"purista.reply.a/b", "bad characters"))
		waitUntil(t, "the refused requests to be counted", func() bool { return srv.Stats().Malformed == malformed+3 })
		if n := echo.Calls() - before; n != 0 {
			t.Errorf("handler ran %d times for refused requests", n)
		}
		// Only the three records written here: no reply went into the
		// request topic.
		if n := partitionRecords(t, brokers, reqTopic) - sizeBefore; n != 3 {
			t.Errorf("request topic grew by %d records, want 3 (no reply written into it)", n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "still served"}); err != nil {
			t.Fatal(err)
		}
	})
}

// partitionRecords sums the records of every partition of topic.
func partitionRecords(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	conn, err := kafkago.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		lc, err := kafkago.DialLeader(context.Background(), "tcp", net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port)), topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := lc.ReadOffsets()
		lc.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += last - first
	}
	return n
}

// TestIdleWritersEnd: a server that answered many clients does not keep a
// writer goroutine and a connection for each reply topic: they end once
// idle.
func TestIdleWritersEnd(t *testing.T) {
	// Long enough that the writers are still there when the test counts
	// them on a loaded machine (200 ms was not), short enough to wait for.
	defer kafka.SetWriterIdle(2 * time.Second)()
	brokers := kafkatest.Embedded(t)
	e, srv, _, _, _ := echoPair(t, brokers)
	reqTopic := e.prefix + "purista.rpc.purista.testing.v1.EchoService"
	const clients = 40
	var recs []kafkago.Message
	for i := range clients {
		replyTo := fmt.Sprintf("%spurista.reply.gone-%d", e.prefix, i)
		kafkatest.CreateTopic(t, brokers, replyTo, 1)
		recs = append(recs, requestRecord(fmt.Sprintf("idle-%d", i), replyTo, "hello"))
	}
	writeRecords(t, brokers, reqTopic, recs...)
	waitUntil(t, "the replies", func() bool { return srv.Stats().Handled >= clients+1 })
	// Server workers stay (up to the concurrency bound); what must go is
	// a writer goroutine per reply topic.
	writers, busy := srv.ProducerWriters(), runtime.NumGoroutine()
	if writers < clients {
		t.Fatalf("%d partition writers after replying to %d reply topics, want at least %d", writers, clients, clients)
	}
	waitUntil(t, "idle writers to end", func() bool { return srv.ProducerWriters() <= 1 })
	n := 0
	waitUntil(t, "their goroutines to end", func() bool { n = runtime.NumGoroutine(); return n <= busy-clients+1 })
	t.Logf("goroutines: %d with %d writers, %d once they ended", busy, writers, n)
}

// TestReadinessFollowsTheBroker: Ready of a server and of a client turns to
// an error within about a second of the broker going away, stays so while
// it is gone, and turns back once the broker is back and the server has
// rejoined its group; calls are answered again then.
func TestReadinessFollowsTheBroker(t *testing.T) {
	dir := t.TempDir()
	b, err := embedded.Start(embedded.WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	addrs := b.Addrs()
	_, port, _ := net.SplitHostPort(addrs[0])
	portN, _ := strconv.Atoi(port)
	var b2 *embedded.Broker
	t.Cleanup(func() {
		b.Close()
		if b2 != nil {
			b2.Close()
		}
	})
	_, srv, _, conn, c := echoPair(t, addrs)
	ctx := context.Background()
	waitUntil(t, "the server to be ready", func() bool { return srv.Ready(ctx) == nil })
	if err := conn.Ready(ctx); err != nil {
		t.Fatalf("client Ready with the broker up = %v", err)
	}

	b.Close()
	gone := time.Now()
	waitUntil(t, "the server to be not ready", func() bool { return srv.Ready(ctx) != nil })
	if d := time.Since(gone); d > 1500*time.Millisecond {
		t.Errorf("server Ready took %v to notice the broker went away, want about a second at most", d)
	}
	if err := conn.Ready(ctx); err == nil {
		t.Errorf("client Ready with the broker gone = nil")
	}

	// The outage lasts long enough for heartbeats and fetches to fail.
	time.Sleep(2 * time.Second)
	b2, err = embedded.Start(embedded.WithDataDir(dir), embedded.WithPort(portN))
	if err != nil {
		t.Fatalf("restart the broker on port %d: %v", portN, err)
	}
	back := time.Now()
	var errs []string
	waitUntil(t, "the server to be ready again", func() bool {
		err := srv.Ready(ctx)
		if err != nil && (len(errs) == 0 || errs[len(errs)-1] != err.Error()) {
			errs = append(errs, err.Error())
		}
		return err == nil
	})
	t.Logf("readiness errors after the restart: %q", errs)
	ready := time.Since(back)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Echo(cctx, &testingv1.EchoRequest{Message: "after the restart"}); err != nil {
		t.Fatalf("call after the broker came back: %v", err)
	}
	t.Logf("broker back → server ready %v, → first call answered %v", ready, time.Since(back))
	// Without removing the member id left behind, the group waits for its
	// session timeout (6 s) before anyone reads the partitions again.
	if ready > 2500*time.Millisecond {
		t.Errorf("server took %v after the broker came back to be ready, want well under the 6 s session timeout", ready)
	}
	if err := conn.Ready(ctx); err != nil {
		t.Errorf("client Ready after the restart = %v", err)
	}
}
