package kafka_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/purista-go/purista/embedded"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
)

// TestProduceRetriesNotLeader: a broker that refuses a request's produce
// with NOT_LEADER_FOR_PARTITION (a leader just elected, as after a topic is
// created on a real cluster, or moving) does not fail the call: the batch
// is written again. A missing topic is still not retried.
func TestProduceRetriesNotLeader(t *testing.T) {
	b, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	e := newEnv(t, b.Addrs())
	srv := e.Server(t, conformance.Options{})
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "retry"})
	srv.Start(t)
	t.Cleanup(srv.Stop)
	conn := e.Client(t, conformance.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := testingv1.NewEchoServiceClient(conn)
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "warm"}); err != nil {
		t.Fatal(err)
	}

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
