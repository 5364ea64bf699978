package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/embedded"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/dispatch"
)

// A stored reply answers as the first run did: body, header and trailer
// metadata, and an error's code, message and details.
func TestStoredReplyRoundTrip(t *testing.T) {
	hdr, trl := metadata.Pairs("x-h", "1"), metadata.Pairs("x-t", "2")
	value, headers := storedRecord("/s/M", "k", "id", dispatch.Result{Response: &testingv1.EchoResponse{Message: "hi"}, Header: hdr, Trailer: trl})
	got := storedReply{value: value, headers: headers}.result()
	var resp testingv1.EchoResponse
	if got.Err != nil || proto.Unmarshal(got.Response.(storedBody), &resp) != nil || resp.GetMessage() != "hi" {
		t.Fatalf("stored OK reply = %+v, want the response", got)
	}
	if got.Header.Get("x-h")[0] != "1" || got.Trailer.Get("x-t")[0] != "2" {
		t.Errorf("stored metadata = %v, %v", got.Header, got.Trailer)
	}
	// A stored reply stored again (read by one instance, answered from
	// memory) keeps its body.
	again, _ := storedRecord("/s/M", "k", "id", got)
	if string(again) != string(value) {
		t.Errorf("stored body changed when stored again")
	}

	st, _ := status.New(codes.FailedPrecondition, "no stock").WithDetails(&errdetails.ErrorInfo{Reason: "OUT_OF_STOCK"})
	value, headers = storedRecord("/s/M", "k", "id", dispatch.Result{Err: st.Err()})
	if len(value) != 0 {
		t.Errorf("an error's stored value has %d bytes, want none", len(value))
	}
	got = storedReply{value: value, headers: headers}.result()
	gs := status.Convert(got.Err)
	if gs.Code() != codes.FailedPrecondition || gs.Message() != "no stock" || len(gs.Details()) != 1 {
		t.Errorf("stored error = %v (details %v), want FAILED_PRECONDITION with its detail", gs, gs.Details())
	}
}

// TestReplyStoreCatchUp: an instance that read a store partition before
// another instance stored a reply there finds that reply on its next
// look-up, and look-ups that come together share reads of the partition.
func TestReplyStoreCatchUp(t *testing.T) {
	broker, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	servers := make([]*Server, 2)
	for i := range servers {
		s, err := NewServer(broker.Addrs(), WithTopicPrefix("catchup."), WithLogger(slog.New(slog.DiscardHandler)),
			WithContracts(testingv1.EchoService_PuristaService))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop() })
		servers[i] = s
	}
	a, b := servers[0], servers[1]
	const service, method = "purista.testing.v1.EchoService", "/purista.testing.v1.EchoService/Count"
	if _, err := ensureTopics(ctx, a.base, replyStoreTopics(a.base, []*purista.Service{testingv1.EchoService_PuristaService})); err != nil {
		t.Fatal(err)
	}
	topic := a.base.replyStoreTopic(service)
	part, err := b.store.partition(ctx, topic, "k1")
	if err != nil {
		t.Fatal(err)
	}

	// B reads the partition (nothing stored), then A stores k1 there.
	if _, found, err := b.store.lookup(ctx, topic, part, storeKey(method, "k1")); err != nil || found {
		t.Fatalf("B's first look-up: found %v, err %v; want nothing stored", found, err)
	}
	if err := a.store.save(topic, part, storeKey(method, "k1"), method, "k1", "id-1", dispatch.Result{Response: &testingv1.CountResponse{Count: 7, Server: "A"}}); err != nil {
		t.Fatal(err)
	}
	got, found, err := b.store.lookup(ctx, topic, part, storeKey(method, "k1"))
	if err != nil || !found {
		t.Fatalf("B's look-up after A stored k1: found %v, err %v; want A's reply", found, err)
	}
	var resp testingv1.CountResponse
	if res := got.result(); res.Err != nil || proto.Unmarshal(res.Response.(storedBody), &resp) != nil || resp.GetCount() != 7 {
		t.Fatalf("B's stored reply for k1 = %+v, want count 7", res)
	}

	// Look-ups made together share rounds: fewer reads than look-ups.
	before := b.store.catchUps.Load()
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, found, err := b.store.lookup(ctx, topic, part, storeKey(method, fmt.Sprintf("new-%d", i))); err != nil || found {
				errs <- fmt.Errorf("look-up of a new key: found %v, err %v", found, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if rounds := b.store.catchUps.Load() - before; rounds < 1 || rounds >= n {
		t.Errorf("%d concurrent look-ups read the partition %d times; want at least once and fewer than %d", n, rounds, n)
	} else {
		t.Logf("%d concurrent look-ups read the partition %d times", n, rounds)
	}
}

// The index keeps a key at least the retention and at most twice as long,
// and a tombstone removes it.
func TestReplyStoreIndexRotates(t *testing.T) {
	st := &replyStore{retention: 50 * time.Millisecond}
	p := &storePart{index: map[storeHash]int64{}, rotated: time.Now()}
	has := func(k string) bool {
		h := hashStoreKey(k)
		_, a := p.index[h]
		_, b := p.older[h]
		return a || b
	}
	st.indexLocked(p, []byte("/s/M a"), 1, true)
	st.indexLocked(p, []byte("/s/M b"), 2, true)
	st.indexLocked(p, []byte("/s/M b"), 3, false)
	if !has("/s/M a") || has("/s/M b") {
		t.Fatalf("after storing a and b and a tombstone of b: a %v, b %v; want a only", has("/s/M a"), has("/s/M b"))
	}
	time.Sleep(60 * time.Millisecond)
	st.indexLocked(p, []byte("/s/M c"), 4, true) // rotates: a is older
	if !has("/s/M a") || !has("/s/M c") {
		t.Fatalf("one retention later: a %v, c %v; want both", has("/s/M a"), has("/s/M c"))
	}
	time.Sleep(60 * time.Millisecond)
	st.indexLocked(p, []byte("/s/M d"), 5, true) // rotates again: a is gone
	if has("/s/M a") || !has("/s/M c") || !has("/s/M d") {
		t.Errorf("two retentions later: a %v, c %v, d %v; want c and d only", has("/s/M a"), has("/s/M c"), has("/s/M d"))
	}
}
