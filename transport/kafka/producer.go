package kafka

import (
	"context"
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
	logger   *slog.Logger

	mu     sync.Mutex
	queues map[topicPartition]chan *pendingRecord
	meta   map[string]*topicMeta
	stick  map[string]*stickyState
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
	rr     atomic.Uint32

	requests, records atomic.Int64
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
}

var errProducerClosed = errors.New("producer is closed")

// errTopicMissing reports a topic the broker does not know.
type errTopicMissing struct{ topic string }

func (e errTopicMissing) Error() string { return fmt.Sprintf("topic %s does not exist", e.topic) }

func newProducer(dialer *kafka.Dialer, brokers []string, acks int, maxBatch int, logger *slog.Logger) *producer {
	return &producer{dialer: dialer, brokers: brokers, acks: acks, maxBatch: maxBatch, logger: logger,
		queues: map[topicPartition]chan *pendingRecord{}, meta: map[string]*topicMeta{}, stick: map[string]*stickyState{}, done: make(chan struct{})}
}

func (p *producer) broker() string {
	return p.brokers[int(p.rr.Add(1))%len(p.brokers)]
}

const metadataRefresh = time.Minute

// lookup asks a broker for the partitions of topic.
func (p *producer) lookup(ctx context.Context, topic string) ([]kafka.Partition, error) {
	parts, err := p.dialer.LookupPartitions(ctx, "tcp", p.broker(), topic)
	if errors.Is(err, kafka.UnknownTopicOrPartition) || (err == nil && len(parts) == 0) {
		return nil, errTopicMissing{topic}
	}
	return parts, err
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

// send writes msg to the topic partition and waits for the broker's
// acknowledgement or ctx.
func (p *producer) send(ctx context.Context, topic string, partition int, msg kafka.Message) error {
	pr := &pendingRecord{msg: msg, done: make(chan error, 1)}
	if err := p.enqueue(ctx, topic, partition, pr); err != nil {
		return err
	}
	select {
	case err := <-pr.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return errProducerClosed
	}
}

// sendAsync queues msg for the topic partition and returns at once. The
// channel it returns receives an error if the write fails, and nothing
// when it succeeds.
func (p *producer) sendAsync(ctx context.Context, topic string, partition int, msg kafka.Message) (<-chan error, error) {
	pr := &pendingRecord{msg: msg, done: make(chan error, 1), errOnly: true}
	if err := p.enqueue(ctx, topic, partition, pr); err != nil {
		return nil, err
	}
	return pr.done, nil
}

// sendThen queues msg for the topic partition, waiting at most wait for
// room, and calls then with the outcome: nil once the broker acknowledged
// it. then runs on the writer's goroutine, or on the caller's when msg
// cannot be queued; it must not block. Unlike enqueue it needs no context,
// and starts a timer only when the queue is full.
func (p *producer) sendThen(topic string, partition int, msg kafka.Message, wait time.Duration, then func(error)) {
	q, err := p.queue(topic, partition)
	if err != nil {
		then(err)
		return
	}
	pr := &pendingRecord{msg: msg, then: then}
	select {
	case q <- pr:
		return
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case q <- pr:
	case <-t.C:
		then(fmt.Errorf("the writer of %s partition %d had no room for %v: the broker is slower than the records arrive", topic, partition, wait))
	case <-p.done:
		then(errProducerClosed)
	}
}

// enqueue hands pr to the writer of its topic partition.
func (p *producer) enqueue(ctx context.Context, topic string, partition int, pr *pendingRecord) error {
	q, err := p.queue(topic, partition)
	if err != nil {
		return err
	}
	select {
	case q <- pr:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return errProducerClosed
	}
}

func (p *producer) queue(topic string, partition int) (chan *pendingRecord, error) {
	tp := topicPartition{topic, partition}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errProducerClosed
	}
	q, ok := p.queues[tp]
	if !ok {
		q = make(chan *pendingRecord, p.maxBatch)
		p.queues[tp] = q
		p.wg.Add(1)
		go p.run(tp, q)
	}
	return q, nil
}

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

func (p *producer) run(tp topicPartition, q chan *pendingRecord) {
	defer p.wg.Done()
	var conn *kafka.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	batch := make([]*pendingRecord, 0, p.maxBatch)
	msgs := make([]kafka.Message, 0, p.maxBatch)
	var carry *pendingRecord // taken from the queue, left for the next batch
	for {
		batch, msgs = batch[:0], msgs[:0]
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case first := <-q:
				batch = append(batch, first)
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
		for _, b := range batch {
			msgs = append(msgs, b.msg)
		}
		var err error
	write:
		for attempt := 1; ; attempt++ {
			if conn == nil {
				conn, err = p.dial(tp)
			}
			if err == nil {
				_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
				_, err = conn.WriteMessages(msgs...)
				p.requests.Add(1)
				p.records.Add(int64(len(msgs)))
				if err != nil {
					// The leader may have moved or the connection broken:
					// dial again.
					_ = conn.Close()
					conn = nil
				}
			}
			if err == nil || !retriable(err) || attempt == writeAttempts {
				break
			}
			// The broker did not take the batch (a leader just elected or
			// moving): write it again to the leader metadata names now.
			select {
			case <-time.After(retryBackoff(attempt)):
			case <-p.done:
				err = errProducerClosed
				break write
			}
		}
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			err = errTopicMissing{tp.topic}
		}
		for _, b := range batch {
			switch {
			case b.then != nil:
				b.then(err)
			case err != nil || !b.errOnly:
				b.done <- err
			}
		}
	}
}

// failQueued tells the records left in q that the producer closed.
func failQueued(q chan *pendingRecord) {
	for {
		select {
		case b := <-q:
			if b.then != nil {
				b.then(errProducerClosed)
			} else {
				b.done <- errProducerClosed
			}
		default:
			return
		}
	}
}

// writeAttempts bounds how often a batch is written when the broker
// refuses it with a retriable error; with retryBackoff the attempts span
// about two seconds, longer than a leader election.
const writeAttempts = 8

func retryBackoff(attempt int) time.Duration {
	return min(20*time.Millisecond<<(attempt-1), 500*time.Millisecond)
}

// retriable reports whether err says the broker did not write the batch
// and may accept it shortly: it is written again then, without risk of a
// duplicate. A missing topic is not retried: a reply topic whose client is
// gone fails at once.
func retriable(err error) bool {
	return errors.Is(err, kafka.NotLeaderForPartition) || errors.Is(err, kafka.LeaderNotAvailable) ||
		errors.Is(err, kafka.NotEnoughReplicas) || errors.Is(err, kafka.BrokerNotAvailable)
}

func (p *producer) dial(tp topicPartition) (*kafka.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
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
