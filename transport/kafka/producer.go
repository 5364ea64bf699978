package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// producer writes records with one produce request in flight per partition:
// a record is sent at once when its partition is idle, and records that
// queue while a request is in flight go together in the next one. This
// gives the latency of unbatched sends when idle and the throughput of
// batching under load; kafka-go's Writer offers only a fixed batch timeout.
//
// Each partition is written through its own connection to the partition's
// leader, and partition counts come from metadata requests sent to a broker,
// not from kafka-go's cached cluster view: a topic created a moment ago by
// another process (a new client's reply topic) is writable at once.
type producer struct {
	dialer   *kafka.Dialer
	brokers  []string
	acks     int
	maxBatch int
	codec    kafka.CompressionCodec // nil: uncompressed
	logger   *slog.Logger

	mu     sync.Mutex
	queues map[topicPartition]*partitionWriter
	meta   map[string]*topicMeta
	stick  map[string]*stickyState
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
	rr     atomic.Uint32

	requests, records, retries atomic.Int64
}

// partitionWriter is the queue of one topic partition and the goroutine
// that writes it. The goroutine ends after writerIdle without records, so a
// process that answered many clients (each with its own reply topic) does
// not keep a goroutine and a connection for every one of them.
type partitionWriter struct {
	q chan *pendingRecord
	// users counts senders that took q from the map and have not yet put
	// their record in it; the writer ends only when none does. It grows
	// under producer.mu, so a writer that sees 0 under the lock knows no
	// sender can reach it any more once it left the map.
	users atomic.Int32
}

type topicPartition struct {
	topic     string
	partition int
}

type topicMeta struct {
	partitions []int
	fetched    time.Time
}

type pendingRecord struct {
	msg  kafka.Message
	done chan error
	// errOnly: done receives only a failure; success is not signalled, so
	// a caller that waits for something else as well is not woken for it.
	errOnly bool
	// then, when set, is called with the outcome instead of done, on the
	// partition's writer goroutine.
	then func(error)
	// deadline is when a write that keeps failing with a retriable error
	// is given up: the deadline of the call the record belongs to, so a
	// reply or a request is written again for as long as its caller waits.
	deadline time.Time
	// offset is where the broker stored the record, set before done
	// receives nil.
	offset int64
}

var errProducerClosed = errors.New("producer is closed")

// errTopicMissing reports a topic the broker does not know.
type errTopicMissing struct{ topic string }

func (e errTopicMissing) Error() string { return fmt.Sprintf("topic %s does not exist", e.topic) }

func newProducer(dialer *kafka.Dialer, brokers []string, acks int, maxBatch int, codec kafka.CompressionCodec, logger *slog.Logger) *producer {
	return &producer{dialer: dialer, brokers: brokers, acks: acks, maxBatch: maxBatch, codec: codec, logger: logger,
		queues: map[topicPartition]*partitionWriter{}, meta: map[string]*topicMeta{}, stick: map[string]*stickyState{}, done: make(chan struct{})}
}

func (p *producer) broker() string {
	return p.brokers[int(p.rr.Add(1))%len(p.brokers)]
}

const metadataRefresh = time.Minute

// lookup asks a broker for the partitions of topic. A topic one broker
// does not know is asked of the others before it counts as missing: a
// broker learns of a topic created a moment ago (a new client's reply
// topic) a little after the controller, and a broker just restarted
// catches up on metadata.
func (p *producer) lookup(ctx context.Context, topic string) ([]kafka.Partition, error) {
	var err error
	for range p.brokers {
		var parts []kafka.Partition
		parts, err = p.dialer.LookupPartitions(ctx, "tcp", p.broker(), topic)
		if errors.Is(err, kafka.UnknownTopicOrPartition) || (err == nil && len(parts) == 0) {
			err = errTopicMissing{topic}
			continue
		}
		if err == nil {
			return parts, nil
		}
	}
	return nil, err
}

// partitions returns the partition ids of topic, from a cache refreshed
// every minute or when refresh is set.
func (p *producer) partitions(ctx context.Context, topic string, refresh bool) ([]int, error) {
	p.mu.Lock()
	m := p.meta[topic]
	p.mu.Unlock()
	if m != nil && !refresh && time.Since(m.fetched) < metadataRefresh {
		return m.partitions, nil
	}
	parts, err := p.lookup(ctx, topic)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(parts))
	for i, part := range parts {
		ids[i] = part.ID
	}
	sort.Ints(ids)
	p.mu.Lock()
	p.meta[topic] = &topicMeta{partitions: ids, fetched: time.Now()}
	p.mu.Unlock()
	return ids, nil
}

// pickPartition chooses the partition for key: the Java client's murmur2
// partitioner for keyed records, round-robin otherwise.
func (p *producer) pickPartition(ctx context.Context, topic string, key []byte) (int, error) {
	ids, err := p.partitions(ctx, topic, false)
	if err != nil {
		return 0, err
	}
	if len(key) > 0 {
		return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, ids...), nil
	}
	return p.sticky(topic, ids), nil
}

// stickyWindow is how long unkeyed records keep going to one partition.
const stickyWindow = time.Millisecond

// sticky picks the partition for an unkeyed record: the same one for a
// millisecond, then the next. Under load the records of a window queue
// behind one in-flight request and go together in the next, instead of
// splitting into a small request per partition; over a few milliseconds
// every partition, and so every server instance, gets its share. Idle, a
// record is still sent at once.
func (p *producer) sticky(topic string, ids []int) int {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stick[topic]
	if st == nil {
		st = &stickyState{}
		p.stick[topic] = st
	}
	if now.After(st.until) {
		st.next++
		st.until = now.Add(stickyWindow)
	}
	return ids[st.next%len(ids)]
}

type stickyState struct {
	next  int
	until time.Time
}

// deliveryTimeout bounds the retries of a record written without a
// deadline (keepalives, dead letters without a context deadline).
const deliveryTimeout = 30 * time.Second

func recordDeadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(deliveryTimeout)
}

// send writes msg to the topic partition and waits for the broker's
// acknowledgement or ctx. A write that fails retriably is tried again
// until ctx's deadline.
func (p *producer) send(ctx context.Context, topic string, partition int, msg kafka.Message) error {
	_, err := p.sendAt(ctx, topic, partition, msg)
	return err
}

// sendAt is send that also returns the offset the broker stored msg at.
func (p *producer) sendAt(ctx context.Context, topic string, partition int, msg kafka.Message) (int64, error) {
	pr := &pendingRecord{msg: msg, done: make(chan error, 1), deadline: recordDeadline(ctx)}
	if err := p.enqueue(ctx, topic, partition, pr); err != nil {
		return 0, err
	}
	select {
	case err := <-pr.done:
		return pr.offset, err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-p.done:
		return 0, errProducerClosed
	}
}

// sendAsync queues msg for the topic partition and returns at once. The
// channel it returns receives an error if the write fails, and nothing
// when it succeeds. A write that fails retriably is tried again until
// ctx's deadline.
func (p *producer) sendAsync(ctx context.Context, topic string, partition int, msg kafka.Message) (<-chan error, error) {
	pr := &pendingRecord{msg: msg, done: make(chan error, 1), errOnly: true, deadline: recordDeadline(ctx)}
	if err := p.enqueue(ctx, topic, partition, pr); err != nil {
		return nil, err
	}
	return pr.done, nil
}

// sendThen queues msg for the topic partition, waiting at most wait for
// room, and calls then with the outcome: nil once the broker acknowledged
// it. A write that fails retriably is tried again until deadline. then runs
// on the writer's goroutine, or on the caller's when msg cannot be queued;
// it must not block. Unlike enqueue it needs no context, and starts a timer
// only when the queue is full.
func (p *producer) sendThen(topic string, partition int, msg kafka.Message, deadline time.Time, wait time.Duration, then func(error)) {
	w, err := p.writer(topic, partition)
	if err != nil {
		then(err)
		return
	}
	defer w.users.Add(-1)
	pr := &pendingRecord{msg: msg, then: then, deadline: deadline}
	select {
	case w.q <- pr:
		return
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case w.q <- pr:
	case <-t.C:
		then(fmt.Errorf("the writer of %s partition %d had no room for %v: the broker is slower than the records arrive", topic, partition, wait))
	case <-p.done:
		then(errProducerClosed)
	}
}

// enqueue hands pr to the writer of its topic partition.
func (p *producer) enqueue(ctx context.Context, topic string, partition int, pr *pendingRecord) error {
	w, err := p.writer(topic, partition)
	if err != nil {
		return err
	}
	defer w.users.Add(-1)
	select {
	case w.q <- pr:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return errProducerClosed
	}
}

// writer returns the writer of the topic partition, starting it when there
// is none, with its users count raised: the caller lowers it once its
// record is in the queue (or given up).
func (p *producer) writer(topic string, partition int) (*partitionWriter, error) {
	tp := topicPartition{topic, partition}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errProducerClosed
	}
	w, ok := p.queues[tp]
	if !ok {
		w = &partitionWriter{q: make(chan *pendingRecord, p.maxBatch)}
		p.queues[tp] = w
		p.wg.Add(1)
		go p.run(tp, w)
	}
	w.users.Add(1)
	return w, nil
}

// retire removes w from the writers if nothing is queued for it and no
// sender holds it, and reports whether it did: its goroutine then ends.
func (p *producer) retire(tp topicPartition, w *partitionWriter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.users.Load() != 0 || len(w.q) != 0 {
		return false
	}
	delete(p.queues, tp)
	if !p.topicInUse(tp.topic) {
		// Forget the topic too: reply topics of clients long gone must
		// not pile up in the caches.
		delete(p.meta, tp.topic)
		delete(p.stick, tp.topic)
	}
	return true
}

// topicInUse reports whether a writer of topic is running. p.mu is held.
func (p *producer) topicInUse(topic string) bool {
	for tp := range p.queues {
		if tp.topic == topic {
			return true
		}
	}
	return false
}

// writers returns how many partition writers run.
func (p *producer) writers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queues)
}

// writerIdle is how long a partition writer waits for a record before it
// closes its connection and ends.
var writerIdle = 30 * time.Second

const writeTimeout = 30 * time.Second

// maxBatchBytes keeps produce batches under the brokers' default
// message.max.bytes (1 MiB).
const maxBatchBytes = 900 << 10

func recordSize(m kafka.Message) int {
	n := len(m.Key) + len(m.Value) + 32
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

func (p *producer) run(tp topicPartition, w *partitionWriter) {
	defer p.wg.Done()
	pw := &connWriter{p: p, tp: tp}
	defer pw.close()
	q := w.q
	idle := time.NewTimer(writerIdle)
	defer idle.Stop()
	batch := make([]*pendingRecord, 0, p.maxBatch)
	var carry *pendingRecord // taken from the queue, left for the next batch
	for {
		batch = batch[:0]
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			idle.Reset(writerIdle)
			select {
			case first := <-q:
				batch = append(batch, first)
			case <-idle.C:
				if p.retire(tp, w) {
					return
				}
				continue
			case <-p.done:
				failQueued(q)
				return
			}
		}
		// Let goroutines that are about to send run first: under load
		// their records join this request; when idle this returns at once.
		runtime.Gosched()
		size := recordSize(batch[0].msg)
	fill:
		for len(batch) < p.maxBatch {
			select {
			case next := <-q:
				// Brokers refuse a whole batch over their message size
				// limit: keep batches under it, so only a record that is
				// too large on its own fails.
				if n := recordSize(next.msg); size+n > maxBatchBytes {
					carry = next
					break fill
				} else {
					size += n
				}
				batch = append(batch, next)
			default:
				break fill
			}
		}
		pw.writeBatch(batch)
	}
}

// connWriter writes the batches of one topic partition over a connection
// to its leader, dialled again whenever a write fails.
type connWriter struct {
	p    *producer
	tp   topicPartition
	conn *kafka.Conn
	msgs []kafka.Message
}

func (cw *connWriter) close() {
	if cw.conn != nil {
		_ = cw.conn.Close()
		cw.conn = nil
	}
}

// writeBatch writes batch and reports the outcome to every record. A
// retriable failure (the broker closed an idle connection, restarted, or
// moved the partition's leader; the network reset the connection) is
// written again to the leader fresh metadata names, with backoff, until
// the records' deadlines pass: each record is given up at its own
// deadline. A failure after the broker may have stored the batch (a
// connection lost while waiting for the answer) can so write a record
// twice; servers answer a request id once.
func (cw *connWriter) writeBatch(batch []*pendingRecord) {
	p := cw.p
	var err error
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err = cw.write(batch, latestDeadline(batch))
		if err == nil || !(retriable(err) || missingWithinGrace(err, start)) {
			break
		}
		// Give up the records whose caller stopped waiting; keep the rest
		// and wait, at most until the last of them gives up, to try again.
		now := time.Now()
		kept := batch[:0]
		for _, b := range batch {
			if now.Before(b.deadline) {
				kept = append(kept, b)
			} else {
				finish(b, fmt.Errorf("%w (written %d times until the deadline)", err, attempt))
			}
		}
		batch = kept
		if len(batch) == 0 {
			return
		}
		wait := min(retryBackoff(attempt), latestDeadline(batch).Sub(now))
		p.retries.Add(1)
		if attempt == 1 || attempt%20 == 0 {
			p.logger.Debug("kafka: write failed; writing again", "topic", cw.tp.topic, "partition", cw.tp.partition, "attempt", attempt, "error", err)
		}
		select {
		case <-time.After(wait):
		case <-p.done:
			err = errProducerClosed
			for _, b := range batch {
				finish(b, err)
			}
			return
		}
	}
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		err = errTopicMissing{cw.tp.topic}
	}
	for _, b := range batch {
		finish(b, err)
	}
}

// latestDeadline returns the latest deadline of the records in batch.
func latestDeadline(batch []*pendingRecord) time.Time {
	var latest time.Time
	for _, b := range batch {
		if b.deadline.After(latest) {
			latest = b.deadline
		}
	}
	return latest
}

// write sends batch once, dialling the partition's leader first when there
// is no connection; until is the latest deadline of its records.
func (cw *connWriter) write(batch []*pendingRecord, until time.Time) error {
	cw.msgs = cw.msgs[:0]
	for _, b := range batch {
		cw.msgs = append(cw.msgs, b.msg)
	}
	limit := time.Now().Add(writeTimeout)
	if until.Before(limit) {
		limit = until
	}
	if cw.conn == nil {
		conn, err := cw.p.dial(cw.tp, limit)
		if err != nil {
			return err
		}
		cw.conn = conn
	}
	_ = cw.conn.SetDeadline(limit)
	_, _, base, _, err := cw.conn.WriteCompressedMessagesAt(cw.p.codec, cw.msgs...)
	cw.p.requests.Add(1)
	cw.p.records.Add(int64(len(cw.msgs)))
	if err != nil {
		// The connection may be broken or the leader elsewhere: dial
		// again next time.
		cw.close()
		return err
	}
	for i, b := range batch {
		b.offset = base + int64(i)
	}
	return nil
}

// finish reports the outcome of one record to its sender.
func finish(b *pendingRecord, err error) {
	switch {
	case b.then != nil:
		b.then(err)
	case err != nil || !b.errOnly:
		b.done <- err
	}
}

// failQueued tells the records left in q that the producer closed.
func failQueued(q chan *pendingRecord) {
	for {
		select {
		case b := <-q:
			finish(b, errProducerClosed)
		default:
			return
		}
	}
}

// missingTopicGrace is how long a write to a topic no broker knows is
// tried again: a topic created a moment ago by another process may not
// have reached every broker's metadata yet. A reply topic whose client is
// gone fails after it.
const missingTopicGrace = 1500 * time.Millisecond

func missingWithinGrace(err error, start time.Time) bool {
	var missing errTopicMissing
	return (errors.As(err, &missing) || errors.Is(err, kafka.UnknownTopicOrPartition)) && time.Since(start) < missingTopicGrace
}

// retryBackoff is the pause before write attempt+1: short at first (a
// leader elected a moment ago, an idle connection closed), at most 250 ms so
// that a broker back from a restart is written to within a quarter second.
func retryBackoff(attempt int) time.Duration {
	return min(10*time.Millisecond<<(attempt-1), 250*time.Millisecond)
}

// retriable reports whether a failed write may succeed when tried again:
// every connection failure (EOF, reset, broken pipe, refused, timeouts: the
// broker closed an idle connection, restarted or moved a leader) and the
// broker errors Kafka marks retriable. Not retried: a missing topic (a
// reply topic whose client is gone fails at once), a record the broker
// refuses for good (too large, not authorised), TLS certificate failures,
// and a closed producer.
func retriable(err error) bool {
	var missing errTopicMissing
	var kerr kafka.Error
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case err == nil, errors.Is(err, errProducerClosed), errors.As(err, &missing),
		errors.Is(err, context.Canceled):
		return false
	case errors.As(err, &kerr):
		return kerr.Temporary() && kerr != kafka.UnknownTopicOrPartition
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return false
	}
	return true
}

func (p *producer) dial(tp topicPartition, until time.Time) (*kafka.Conn, error) {
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	// Look the leader up first: kafka-go's DialLeader retries a missing
	// topic until its context ends, and a reply topic whose client is gone
	// must fail at once.
	parts, err := p.lookup(ctx, tp.topic)
	if err != nil {
		return nil, err
	}
	var leader *kafka.Partition
	for i := range parts {
		if parts[i].ID == tp.partition {
			leader = &parts[i]
		}
	}
	if leader == nil {
		return nil, errTopicMissing{fmt.Sprintf("%s partition %d", tp.topic, tp.partition)}
	}
	conn, err := p.dialer.DialPartition(ctx, "tcp", "", *leader)
	if err != nil {
		return nil, err
	}
	if err := conn.SetRequiredAcks(p.acks); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

func (p *producer) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	p.wg.Wait()
}
