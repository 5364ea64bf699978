package kafka

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
)

// The reply store makes an idempotency key durable: the reply of a keyed
// call is written to the service's compacted reply store topic before it
// is sent, and a call repeated with the same key — on another instance,
// after a restart or a rebalance — is answered from it instead of running
// the handler again (docs/protocol.md, "Reply store").

const (
	replyStoreTopicPrefix = "purista.replies."
	defaultReplyRetention = 24 * time.Hour
	minReplyRetention     = time.Minute
	// storeWriteTimeout bounds the write of a stored reply. It does not
	// follow the caller's deadline: a caller that gave up retries with the
	// same key, and that retry needs the record.
	storeWriteTimeout = 10 * time.Second
	// storeReadTimeout bounds reading a store partition before a keyed call
	// runs; past it the call is refused, not run blind.
	storeReadTimeout = 5 * time.Second
)

// replyStoreTopic is the reply store topic of a service. It is named after
// the service, not its request topic, which a contract may rename.
func (b *base) replyStoreTopic(service string) string {
	return b.cfg.topicPrefix + ReplyStoreTopic(service)
}

// replyStoreTopics are the reply store topics of services: as many
// partitions as their request topics, so that the partition of a key is
// the same in both (see storePartition), compacted so that a key keeps
// its latest record, and deleted after the retention so that the topic
// does not grow for ever. None when the store is off.
func replyStoreTopics(b *base, services []*purista.Service) []TopicSpec {
	if b.cfg.replyRetention <= 0 {
		return nil
	}
	specs := make([]TopicSpec, 0, len(services))
	for _, s := range services {
		specs = append(specs, TopicSpec{
			Name:              b.replyStoreTopic(s.Name),
			Partitions:        orDefault(int(s.Partitions), b.cfg.partitions),
			ReplicationFactor: orDefault(int(s.ReplicationFactor), b.cfg.replication),
			Config: map[string]string{
				"cleanup.policy": "compact,delete",
				"retention.ms":   strconv.FormatInt(b.cfg.replyRetention.Milliseconds(), 10),
			},
		})
	}
	return specs
}

// storeKey is the record key of a stored reply: the full method and the
// idempotency key, so that one key used with two methods names two
// operations.
func storeKey(method, key string) string { return method + " " + key }

// replyStore reads and writes the reply store topics of a server.
type replyStore struct {
	b         *base
	retention time.Duration
	logger    *slog.Logger
	// mem answers a key seen lately without a broker round trip, and makes
	// a repeated key wait for its first execution still running here.
	mem *dispatch.Dedup

	mu    sync.Mutex
	parts map[topicPartition]*storePart
	// kc reads the store; renew replaces it with one of fresh metadata.
	kc      atomic.Pointer[kafka.Client]
	renewed atomic.Int64 // unix nanoseconds of the last renew

	hits, saveFailed atomic.Int64
	catchUps         atomic.Int64 // reads of a partition to its end (catchUp rounds)
}

// client returns the kafka-go client the store is read with.
func (st *replyStore) client() *kafka.Client { return st.kc.Load() }

// renew gives the store a client with fresh metadata, after a read failed
// in a way a moved leader or a restarted broker explains.
// Many calls failing at once renew it once per 100 ms.
func (st *replyStore) renew() {
	now := time.Now().UnixNano()
	last := st.renewed.Load()
	if now-last < int64(100*time.Millisecond) || !st.renewed.CompareAndSwap(last, now) {
		return
	}
	old := st.kc.Swap(newKafkaClient(st.b.brokers, st.b.cfg))
	if tr, ok := old.Transport.(*kafka.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// storePart is what this instance has read of one store partition.
type storePart struct {
	mu   sync.Mutex
	next int64 // the next offset to read
	// index maps the keys stored in the partition to their offsets. It
	// holds no reply, and no pointer for the garbage collector to follow:
	// about 40 bytes a key. Keys stay at least the retention, at most
	// twice as long: index is replaced by a new map every retention,
	// older keeping the one before (rotate).
	index, older map[storeHash]int64
	rotated      time.Time
	// Reads of the partition to its end run one at a time; a look-up that
	// comes while one runs joins the next, which starts when the running
	// one ends (catchUp).
	running bool
	pending *catchUpRound
}

// catchUpRound is one read of a store partition to its end, shared by the
// look-ups that joined it before it started.
type catchUpRound struct {
	done chan struct{}
	err  error
}

type storedReply struct {
	value   []byte
	headers []kafka.Header
	at      time.Time
}

func newReplyStore(b *base, mem *dispatch.Dedup) *replyStore {
	st := &replyStore{b: b, retention: b.cfg.replyRetention, logger: b.cfg.logger, mem: mem, parts: map[topicPartition]*storePart{}}
	st.kc.Store(newKafkaClient(b.brokers, b.cfg))
	return st
}

// storedBody is the response of a stored reply: protobuf bytes, written as
// they are.
type storedBody []byte

// do answers a call with idempotency key from the store, or runs it and
// stores its result. A result that is not final (dispatch.Result.Final: a
// refused request or a transient failure) is not stored: a retry runs again. When the store cannot be read the call is
// refused with UNAVAILABLE rather than run: it may have run before.
func (st *replyStore) do(ctx context.Context, service, method, key, requestID string, run func() dispatch.Result) dispatch.Result {
	sk := storeKey(method, key)
	return st.mem.Do(sk, func() dispatch.Result {
		topic := st.b.replyStoreTopic(service)
		rctx, cancel := context.WithTimeout(ctx, storeReadTimeout)
		defer cancel()
		var part int
		var stored storedReply
		found := false
		var err error
		// A store partition whose leader moved or whose broker went away
		// is read again, like a write, while the call's deadline allows.
		for attempt := 1; ; attempt++ {
			part, err = st.partition(rctx, topic, key)
			if err == nil {
				stored, found, err = st.lookup(rctx, topic, part, sk)
			}
			if err == nil || !retriable(err) || rctx.Err() != nil {
				break
			}
			st.renew()
			select {
			case <-rctx.Done():
			case <-time.After(retryBackoff(attempt)):
			}
		}
		if err != nil {
			st.logger.Warn("kafka: reply store not readable; keyed call refused", "topic", topic, "method", method, "error", err)
			return dispatch.Result{Err: status.Errorf(codes.Unavailable, "the reply store %s of %s cannot be read (%v): the call was not run, so that it cannot run twice; retry with the same idempotency key", topic, service, err)}
		}
		if found {
			st.hits.Add(1)
			return stored.result()
		}
		res := run()
		if !res.Final() {
			return res
		}
		if err := st.save(topic, part, sk, method, key, requestID, res); err != nil {
			st.saveFailed.Add(1)
			st.logger.Warn("kafka: reply not stored; a retry of this key on another instance may run it again", "topic", topic, "method", method, "error", err)
		}
		return res
	})
}

// partition is the store partition of an idempotency key:
// murmur2(key) mod partitions, the partition the client sends a keyed
// request without a contract partition key to, so that with both topics
// provisioned alike the instance that runs a key's requests also owns its
// store partition.
func (st *replyStore) partition(ctx context.Context, topic, key string) (int, error) {
	ids, err := st.b.prod.partitions(ctx, topic, false)
	if err != nil {
		var missing errTopicMissing
		if errors.As(err, &missing) {
			return 0, fmt.Errorf("topic %s does not exist: provision it with `purista topics ensure` or start the server with kafka.WithEnsureTopics", topic)
		}
		return 0, err
	}
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(key)}, ids...), nil
}

func (st *replyStore) part(topic string, partition int) *storePart {
	st.mu.Lock()
	defer st.mu.Unlock()
	tp := topicPartition{topic: topic, partition: partition}
	p := st.parts[tp]
	if p == nil {
		p = &storePart{index: map[storeHash]int64{}, rotated: time.Now()}
		st.parts[tp] = p
	}
	return p
}

// lookup reads what was written to the store partition since this
// instance last looked — all of it the first time — and returns the reply
// stored for sk within the retention. Reading up to the partition's end
// before every new key means a reply another instance stored (before a
// rebalance moved the key here) is never missed.
func (st *replyStore) lookup(ctx context.Context, topic string, partition int, sk string) (storedReply, bool, error) {
	p := st.part(topic, partition)
	if err := st.catchUp(ctx, topic, partition, p); err != nil {
		return storedReply{}, false, err
	}
	h := hashStoreKey(sk)
	p.mu.Lock()
	offset, ok := p.index[h]
	if !ok {
		offset, ok = p.older[h]
	}
	p.mu.Unlock()
	if !ok {
		return storedReply{}, false, nil
	}
	r, found, err := st.readAt(ctx, topic, partition, offset, sk)
	if err != nil || !found || time.Since(r.at) > st.retention {
		return storedReply{}, false, err
	}
	return r, true, nil
}

// readAt reads the stored reply of sk at offset. It is not found when the
// record there is gone or another key's (a hash shared by two keys).
func (st *replyStore) readAt(ctx context.Context, topic string, partition int, offset int64, sk string) (storedReply, bool, error) {
	resp, err := st.fetchFrom(ctx, topic, partition, offset)
	if errors.Is(err, kafka.OffsetOutOfRange) {
		return storedReply{}, false, nil // deleted by the retention
	}
	if err != nil {
		return storedReply{}, false, fmt.Errorf("read %s partition %d at offset %d: %w", topic, partition, offset, err)
	}
	for {
		r, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return storedReply{}, false, nil
		}
		if err != nil {
			return storedReply{}, false, fmt.Errorf("read %s partition %d at offset %d: %w", topic, partition, offset, err)
		}
		if r.Offset < offset {
			continue
		}
		if r.Offset > offset {
			return storedReply{}, false, nil // compacted away
		}
		key, kerr := readBytes(r.Key)
		value, verr := readBytes(r.Value)
		if kerr != nil || verr != nil || string(key) != sk {
			return storedReply{}, false, nil
		}
		if _, ok := headerValue(r.Headers, hdrStatus); !ok {
			return storedReply{}, false, nil
		}
		return storedReply{value: value, headers: r.Headers, at: r.Time}, true, nil
	}
}

// fetchFrom fetches the partition from offset, with the broker's error as
// the error. Wanting no minimum of bytes, it is answered at once.
func (st *replyStore) fetchFrom(ctx context.Context, topic string, partition int, offset int64) (*kafka.FetchResponse, error) {
	resp, err := st.client().Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: offset, MinBytes: 0, MaxBytes: 8 << 20, MaxWait: storeReadTimeout})
	if err == nil {
		err = resp.Error
	}
	return resp, err
}

// storeHash is a stored reply's key as the index keeps it: 128 bits of its
// SHA-256, so that two keys sharing one is not a case to plan for.
type storeHash [16]byte

func hashStoreKey(sk string) storeHash {
	sum := sha256.Sum256([]byte(sk))
	return storeHash(sum[:16])
}

// indexLocked records that sk is stored at offset, or with a tombstone
// (stored false) that it is not; p.mu is held.
func (st *replyStore) indexLocked(p *storePart, sk []byte, offset int64, stored bool) {
	if now := time.Now(); now.Sub(p.rotated) > st.retention {
		p.older, p.index, p.rotated = p.index, make(map[storeHash]int64, len(p.index)), now
	}
	h := hashStoreKey(string(sk))
	if !stored {
		delete(p.index, h)
		delete(p.older, h)
		return
	}
	p.index[h] = offset
}

// catchUp returns once the partition was read to an end that the broker
// reported after catchUp was called: every reply stored before that is in
// the index. Look-ups that come together share one read — a round starts
// only after the one before it ended, so its end is new to each of them —
// and a burst of keyed calls costs a round trip per round, not per call.
func (st *replyStore) catchUp(ctx context.Context, topic string, partition int, p *storePart) error {
	p.mu.Lock()
	r := p.pending
	if r == nil {
		r = &catchUpRound{done: make(chan struct{})}
		p.pending = r
	}
	lead := !p.running
	if lead {
		p.running, p.pending = true, nil
	}
	p.mu.Unlock()
	if lead {
		st.runCatchUp(topic, partition, p, r)
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runCatchUp runs round r, then hands the round that gathered meanwhile,
// if any, to a goroutine of its own, so that the caller that ran r is not
// kept serving others.
func (st *replyStore) runCatchUp(topic string, partition int, p *storePart, r *catchUpRound) {
	st.catchUps.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), storeReadTimeout)
	r.err = st.readToEnd(ctx, topic, partition, p)
	cancel()
	close(r.done)
	p.mu.Lock()
	next := p.pending
	p.pending = nil
	p.running = next != nil
	p.mu.Unlock()
	if next != nil {
		go st.runCatchUp(topic, partition, p, next)
	}
}

// readToEnd fetches the partition from p.next up to its high watermark
// and applies what it reads. A fetch that wants no minimum of bytes is
// answered at once, with the high watermark, so reading nothing new costs
// one round trip.
func (st *replyStore) readToEnd(ctx context.Context, topic string, partition int, p *storePart) error {
	for {
		p.mu.Lock()
		from := p.next
		p.mu.Unlock()
		resp, err := st.fetchFrom(ctx, topic, partition, from)
		if errors.Is(err, kafka.OffsetOutOfRange) {
			// Deleted by the retention (or the topic made anew): go on
			// from where the partition starts now.
			first, end, err := st.offsets(ctx, topic, partition)
			if err != nil {
				return err
			}
			p.mu.Lock()
			if p.next < first || p.next > end {
				p.next = first
			}
			p.mu.Unlock()
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s partition %d: %w", topic, partition, err)
		}
		p.mu.Lock()
		read, err := st.apply(topic, partition, p, resp)
		if err == nil && read == 0 && p.next < resp.HighWatermark {
			// Nothing readable below the high watermark: compaction
			// removed it.
			p.next = resp.HighWatermark
		}
		caughtUp := p.next >= resp.HighWatermark
		p.mu.Unlock()
		if err != nil || caughtUp {
			return err
		}
	}
}

func (st *replyStore) offsets(ctx context.Context, topic string, partition int) (first, end int64, err error) {
	resp, err := st.client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.FirstOffsetOf(partition), kafka.LastOffsetOf(partition)},
	}})
	if err != nil {
		return 0, 0, fmt.Errorf("list offsets of %s partition %d: %w", topic, partition, err)
	}
	for _, po := range resp.Topics[topic] {
		if po.Partition == partition {
			if po.Error != nil {
				return 0, 0, fmt.Errorf("list offsets of %s partition %d: %w", topic, partition, po.Error)
			}
			return po.FirstOffset, po.LastOffset, nil
		}
	}
	return 0, 0, fmt.Errorf("list offsets of %s partition %d: the broker returned none", topic, partition)
}

// apply indexes the stored replies of a fetch response and
// returns how many records it read. p.mu is held.
func (st *replyStore) apply(topic string, partition int, p *storePart, resp *kafka.FetchResponse) (int, error) {
	read := 0
	for {
		r, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return read, nil
		}
		if err != nil {
			return read, fmt.Errorf("read %s partition %d: %w", topic, partition, err)
		}
		if r.Offset < p.next {
			continue // a batch may start before the offset asked for, or was read meanwhile
		}
		p.next = r.Offset + 1
		read++
		if r.Value != nil {
			r.Value.Close() // the index needs only the key
		}
		key, err := readBytes(r.Key)
		if err != nil || len(key) == 0 {
			continue // not a stored reply: nothing to answer with
		}
		_, stored := headerValue(r.Headers, hdrStatus) // none: a tombstone, or a foreign record
		// Expired records are about to be deleted by the broker: indexing
		// them would only hold memory.
		st.indexLocked(p, key, r.Offset, stored && time.Since(r.Time) <= st.retention)
	}
}

func readBytes(b kafka.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	defer b.Close()
	return io.ReadAll(b)
}

// save writes the result of a call as the stored reply of its key, and
// indexes it, so that this instance does not have to read it back.
func (st *replyStore) save(topic string, partition int, sk, method, key, requestID string, res dispatch.Result) error {
	value, headers := storedRecord(method, key, requestID, res)
	ctx, cancel := context.WithTimeout(context.Background(), storeWriteTimeout)
	defer cancel()
	offset, err := st.b.prod.sendAt(ctx, topic, partition, kafka.Message{Key: []byte(sk), Value: value, Headers: headers})
	if err != nil {
		return err
	}
	p := st.part(topic, partition)
	p.mu.Lock()
	st.indexLocked(p, []byte(sk), offset, true)
	if p.next == offset {
		// Everything before the record was read and the record is the
		// entry just kept: the next look-up need not fetch it back.
		p.next = offset + 1
	}
	p.mu.Unlock()
	return nil
}

// storedRecord is the value and headers of a stored reply: those of the
// reply record without its correlation id, plus the method, the key and
// the id of the request that ran.
func storedRecord(method, key, requestID string, res dispatch.Result) ([]byte, []kafka.Header) {
	st := status.Convert(res.Err)
	var body []byte
	if res.Err == nil {
		switch msg := res.Response.(type) {
		case storedBody:
			body = msg
		case proto.Message:
			b, err := proto.Marshal(msg)
			if err != nil {
				st = status.Newf(codes.Internal, "marshal response of %s: %v", method, err)
			}
			body = b
		default:
			st = status.Newf(codes.Internal, "handler for %s returned %T, not a protobuf message", method, res.Response)
		}
	}
	if st.Code() != codes.OK {
		body = nil
	}
	headers := []kafka.Header{
		{Key: hdrVersion, Value: []byte(protocolVersion)},
		{Key: hdrMethod, Value: []byte(method)},
		{Key: hdrIdempotencyKey, Value: []byte(key)},
		{Key: hdrID, Value: []byte(requestID)},
	}
	headers = appendStatusHeaders(headers, st)
	headers = appendMD(headers, hdrHeaderPrefix, res.Header)
	return body, appendMD(headers, hdrTrailerPrefix, res.Trailer)
}

// result is the stored reply as the call's result.
func (r storedReply) result() dispatch.Result {
	rs := decodeReplyHeaders(r.headers)
	res := dispatch.Result{Header: rs.header, Trailer: rs.trailer}
	if rs.code == codes.OK {
		res.Response = storedBody(r.value)
		return res
	}
	res.Err = rs.err()
	return res
}

func (st *replyStore) stored() int64 {
	if st == nil {
		return 0
	}
	return st.hits.Load()
}

func (st *replyStore) failed() int64 {
	if st == nil {
		return 0
	}
	return st.saveFailed.Load()
}
