package kafka_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/purista-go/purista/embedded"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
)

// echoOnOwnBroker serves the Echo service (serveEcho) on an embedded
// broker of the test's own, whose requests the test can intercept.
func echoOnOwnBroker(t *testing.T) (*embedded.Broker, *env, *server, testingv1.EchoServiceClient) {
	b, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	e, srv, _, c := serveEcho(t, b.Addrs())
	return b, e, srv, c
}

// TestProduceRetriesNotLeader: a broker that refuses a request's produce
// with NOT_LEADER_FOR_PARTITION (a leader just elected, as after a topic is
// created on a real cluster, or moving) does not fail the call: the batch
// is written again. A missing topic is still not retried.
func TestProduceRetriesNotLeader(t *testing.T) {
	b, e, _, c := echoOnOwnBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Refuse the next three produce requests to the request topic.
	topic := e.prefix + "purista.rpc.purista.testing.v1.EchoService"
	var refused atomic.Int32
	b.Kfake().ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		b.Kfake().KeepControl()
		req := r.(*kmsg.ProduceRequest)
		if len(req.Topics) != 1 || req.Topics[0].Topic != topic || refused.Load() >= 3 {
			return nil, nil, false
		}
		refused.Add(1)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	resp, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "after a leader change"})
	if err != nil || resp.GetMessage() != "after a leader change" {
		t.Fatalf("Echo while the broker refused 3 writes = %v, %v; want the answer", resp, err)
	}
	if n := refused.Load(); n != 3 {
		t.Errorf("broker refused %d writes, want 3", n)
	}
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "again"}); err != nil {
		t.Fatal(err)
	}
}

// TestServerCountsFailedCommits: a commit the broker refuses does not fail
// the call it belongs to; it is counted (ServerStats.CommitFailed) and
// logged, and later commits go through again.
func TestServerCountsFailedCommits(t *testing.T) {
	b, e, srv, c := echoOnOwnBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stats := srv.Stats
	if n := stats().CommitFailed; n != 0 {
		t.Fatalf("%d commits failed before any was refused", n)
	}

	// Refuse every offset commit until one has been counted as failed.
	var refused atomic.Int32
	var stop atomic.Bool
	b.Kfake().ControlKey(int16(kmsg.OffsetCommit), func(r kmsg.Request) (kmsg.Response, error, bool) {
		if stop.Load() {
			return nil, nil, false
		}
		b.Kfake().KeepControl()
		req := r.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		refused.Add(1)
		return resp, nil, true
	})
	if resp, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "while commits fail"}); err != nil || resp.GetMessage() != "while commits fail" {
		t.Fatalf("Echo while the broker refused commits = %v, %v; want the answer", resp, err)
	}
	for stats().CommitFailed == 0 {
		if ctx.Err() != nil {
			t.Fatalf("no failed commit counted; the broker refused %d commit requests", refused.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)

	// The refused offsets are committed once the broker accepts commits
	// again: the group's committed offsets reach the end of the topic.
	topic, group := e.prefix+"purista.rpc.purista.testing.v1.EchoService", e.prefix+"purista.purista.testing.v1.EchoService"
	kc := &kafkago.Client{Addr: kafkago.TCP(b.Addrs()...)}
	caughtUp := func() bool {
		ends, err := kc.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
			topic: {kafkago.LastOffsetOf(0), kafkago.LastOffsetOf(1), kafkago.LastOffsetOf(2)}}})
		if err != nil {
			return false
		}
		res, err := kc.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
		if err != nil {
			return false
		}
		committed := map[int]int64{}
		for _, p := range res.Topics[topic] {
			committed[p.Partition] = p.CommittedOffset
		}
		for _, p := range ends.Topics[topic] {
			if p.LastOffset > 0 && committed[p.Partition] != p.LastOffset {
				return false
			}
		}
		return true
	}
	for !caughtUp() {
		if ctx.Err() != nil {
			t.Fatal("the offsets whose commits were refused were not committed after the broker accepted commits again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	failed := stats().CommitFailed

	// Later calls commit without failures.
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "after"}); err != nil {
		t.Fatal(err)
	}
	for !caughtUp() && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if n := stats().CommitFailed; n != failed {
		t.Errorf("CommitFailed went from %d to %d after the broker accepted commits again", failed, n)
	}
}
