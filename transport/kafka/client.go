package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
)

type clientConfig struct {
	commonConfig
	interceptors   []grpc.UnaryClientInterceptor
	replyRetention time.Duration
	retry          *purista.RetryPolicy // WithRetry; nil: the default
}

// IdempotencyKey names the logical operation of one call, as the
// "idempotency-key" outgoing metadata does: a server with a reply store
// runs the handler once per key within the store's retention, and the
// client may retry the call (WithRetry). Use a fresh key per operation and
// the same one for every retry of it, such as an HTTP Idempotency-Key.
func IdempotencyKey(key string) grpc.CallOption { return dispatch.KeyCallOption{Key: key} }

// ClientConn sends calls as request records and receives their replies on
// a reply topic of its own. It is safe for concurrent use.
type ClientConn struct {
	*base
	cfg        clientConfig
	replyTopic string
	reader     *kafka.Reader
	// replyToValue and methodValues are the purista-reply-to header value
	// and the purista-method values of the contracts' methods, encoded once
	// for every request record.
	replyToValue []byte
	methodValues map[string][]byte
	invoke       grpc.UnaryInvoker

	mu      sync.Mutex
	pending map[string]chan kafka.Message
	closed  bool
	done    chan struct{}
	// loopCtx ends with done, for the reply reader and the keepalive loop.
	loopCtx  context.Context
	endLoops context.CancelFunc
	loop     sync.WaitGroup

	stats   clientStats
	streams clientStreams // stream.go
}

type clientStats struct {
	calls, orphanReplies, malformedReplies, retries atomic.Int64
}

// ClientStats are counters of a ClientConn.
type ClientStats struct {
	// Calls is the number of request records sent, retries included.
	Calls int64
	// Retries counts tries of keyed calls made again after UNAVAILABLE.
	Retries int64
	// OrphanReplies counts replies that arrived after their call ended.
	OrphanReplies int64
	// MalformedReplies counts reply records without a correlation id.
	MalformedReplies int64
	// ProduceRequests and RecordsProduced count the produce requests sent
	// and the records they carried: their ratio is the batching achieved.
	ProduceRequests, RecordsProduced int64
}

var _ grpc.ClientConnInterface = (*ClientConn)(nil)

// Dial connects to the brokers, creates this instance's reply topic and
// starts reading it. When Dial returns, replies to any call made through the
// ClientConn will be received.
func Dial(ctx context.Context, brokers []string, opts ...ClientOption) (*ClientConn, error) {
	cfg := clientConfig{commonConfig: defaultCommon(), replyRetention: time.Hour}
	for _, o := range opts {
		o.applyClient(&cfg)
	}
	b, err := newBase(brokers, cfg.commonConfig)
	if err != nil {
		return nil, err
	}
	cfg.commonConfig = b.cfg
	c := &ClientConn{
		base:       b,
		cfg:        cfg,
		replyTopic: cfg.topicPrefix + replyTopicPrefix + cfg.clientID,
		pending:    map[string]chan kafka.Message{},
		done:       make(chan struct{}),
	}
	c.replyToValue = []byte(c.replyTopic)
	c.methodValues = map[string][]byte{}
	for _, svc := range c.contracts.Services() {
		for _, m := range svc.Methods {
			c.methodValues[m.FullMethod] = []byte(m.FullMethod)
		}
	}
	c.loopCtx, c.endLoops = context.WithCancel(context.Background())
	c.invoke = dispatch.ChainUnaryClient(c.observeCall(c.roundTrip), cfg.interceptors...)
	if err := c.start(ctx); err != nil {
		c.endLoops()
		b.close()
		return nil, err
	}
	return c, nil
}

func (c *ClientConn) start(ctx context.Context) error {
	if err := c.ping(ctx); err != nil {
		return err
	}
	if c.cfg.ensureTopics {
		services := c.contracts.Services()
		// The reply stores are provisioned with the request topics, so a
		// server finds them whichever side was started with EnsureTopics.
		specs := append(servicesTopics(c.base, services), replyStoreTopics(c.base, services)...)
		if _, err := ensureTopics(ctx, c.base, specs); err != nil {
			return err
		}
	}
	if _, err := ensureTopics(ctx, c.base, []TopicSpec{{
		Name: c.replyTopic, Partitions: 1, ReplicationFactor: c.cfg.replication,
		Config: map[string]string{"retention.ms": strconv.FormatInt(c.cfg.replyRetention.Milliseconds(), 10)},
	}}); err != nil {
		if denied(err) {
			return c.cfg.permissionDenied(fmt.Sprintf("create its reply topic %s (is the client id %q one its principal's ACLs allow?)", c.replyTopic, c.cfg.clientID), err)
		}
		return fmt.Errorf("kafka: create reply topic %s: %w", c.replyTopic, err)
	}
	// Start at the end of the reply topic: a reused client id must not see
	// the replies of an earlier process.
	start, err := c.endOffset(ctx)
	if err != nil {
		return err
	}
	c.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers:        c.brokers,
		Topic:          c.replyTopic,
		Partition:      0,
		Dialer:         c.dialer,
		MinBytes:       1,
		MaxBytes:       16 << 20,
		MaxWait:        500 * time.Millisecond,
		ReadBackoffMin: 10 * time.Millisecond,
		ReadBackoffMax: 200 * time.Millisecond,
		QueueCapacity:  1024,
	})
	if err := c.reader.SetOffset(start); err != nil {
		return fmt.Errorf("kafka: position reply reader: %w", err)
	}
	// A keepalive record now and every minute marks the reply topic as in
	// use, so CollectIdleTopics never removes a live client's topic.
	if err := writeKeepalive(ctx, c.prod, c.replyTopic, c.cfg.clientID); err != nil {
		return fmt.Errorf("kafka: write to reply topic %s: %w", c.replyTopic, err)
	}
	c.loop.Add(2)
	go c.readReplies()
	go func() {
		defer c.loop.Done()
		keepaliveLoop(c.loopCtx, c.prod, c.replyTopic, c.cfg.clientID, c.cfg.logger)
	}()
	return nil
}

func (c *ClientConn) endOffset(ctx context.Context) (int64, error) {
	deadline := time.Now().Add(c.cfg.dialTimeout)
	for {
		resp, err := c.kc.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.replyTopic: {kafka.LastOffsetOf(0)}}})
		if err == nil {
			for _, po := range resp.Topics[c.replyTopic] {
				if po.Partition == 0 && po.Error == nil {
					return po.LastOffset, nil
				} else if po.Partition == 0 {
					err = po.Error
				}
			}
			if err == nil {
				err = errors.New("no offsets returned")
			}
		}
		// A new topic's leader may take a moment to be elected.
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("kafka: read the end offset of reply topic %s: %w", c.replyTopic, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *ClientConn) readReplies() {
	defer c.loop.Done()
	ctx := c.loopCtx
	for {
		m, err := c.reader.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.cfg.logger.Warn("kafka: reading replies failed; retrying", "topic", c.replyTopic, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		id, ok := headerValue(m.Headers, hdrCorrelationID)
		if _, keepalive := headerValue(m.Headers, hdrKeepalive); keepalive && !ok {
			continue
		}
		if !ok {
			c.stats.malformedReplies.Add(1)
			c.cfg.logger.Warn("kafka: reply without correlation id dropped", "topic", m.Topic, "offset", m.Offset)
			continue
		}
		c.mu.Lock()
		ch := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if ch == nil {
			if c.deliverStream(id, m) {
				continue
			}
			c.stats.orphanReplies.Add(1)
			continue
		}
		ch <- m
	}
}

// ReplyTopic returns the topic this client receives its replies on.
func (c *ClientConn) ReplyTopic() string { return c.replyTopic }

// Stats returns the client's counters.
func (c *ClientConn) Stats() ClientStats {
	return ClientStats{Calls: c.stats.calls.Load(), Retries: c.stats.retries.Load(), OrphanReplies: c.stats.orphanReplies.Load(), MalformedReplies: c.stats.malformedReplies.Load(),
		ProduceRequests: c.prod.requests.Load(), RecordsProduced: c.prod.records.Load()}
}

// Invoke sends a unary call and waits for its reply.
func (c *ClientConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if _, err := c.contracts.Require(method); err != nil {
		return err
	}
	ctx, cancel := c.contracts.WithDefaultTimeout(ctx, method, c.cfg.defaultTimeout)
	defer cancel()
	return c.invoke(ctx, method, args, reply, nil, opts...)
}

// NewStream opens a server-streaming call (see stream.go); client- and
// bidi-streaming calls are UNIMPLEMENTED.
func (c *ClientConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.newStream(ctx, desc, method, opts...)
}

func (c *ClientConn) roundTrip(ctx context.Context, method string, args, reply any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
	req, out, err := dispatch.Messages(method, args, reply)
	if err != nil {
		return err
	}
	svc, _, ok := dispatch.SplitMethod(method)
	if !ok {
		return status.Errorf(codes.Unimplemented, "malformed method name %q: want /package.Service/Method", method)
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return status.Errorf(codes.Internal, "call %s: marshal request: %v", method, err)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	_, m, _ := c.contracts.Method(method)
	idemKey := dispatch.CallKey(opts, md, m)
	var key []byte
	if m != nil && m.PartitionKey != nil {
		key = m.PartitionKey(req)
	}
	if len(key) == 0 && idemKey != "" {
		// Every try of a keyed call goes to the same partition — the one
		// of its key in the reply store too — so the instance that ran it
		// answers the retry, or waits for its run to end.
		key = []byte(idemKey)
	}
	return dispatch.RetryKeyed(ctx, idemKey != "", dispatch.RetryPolicy(m, c.cfg.retry), c.done, func() error {
		return c.send(ctx, method, svc, body, key, idemKey, md, out, opts)
	}, func() {
		c.stats.retries.Add(1)
		c.metrics.Client(method).Retry()
	})
}

// send makes one try of a unary call: it writes the request record and
// waits for its reply.
func (c *ClientConn) send(ctx context.Context, method, svc string, body, key []byte, idemKey string, md metadata.MD, out proto.Message, opts []grpc.CallOption) error {
	id, idValue := newCallID()
	start := time.Now()
	deadline, _ := ctx.Deadline()
	topic := c.requestTopic(svc)

	ch := make(chan kafka.Message, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return status.Error(codes.Unavailable, "kafka: client connection is closed")
	}
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	c.stats.calls.Add(1)

	// The call waits for its reply and for a failed write at once: a
	// successful write does not wake it.
	var failed <-chan error
	partition, err := c.prod.pickPartition(ctx, topic, key)
	if err == nil {
		failed, err = c.sendTraced(ctx, topic, partition, kafka.Message{
			Key:   key,
			Value: body,
			// The record's timestamp is when the call began, also when
			// the write is retried: the server sizes the time a reply
			// needs from it (replyMargin).
			Time:    start,
			Headers: encodeRequestHeaders(idValue, c.methodValue(method), c.replyToValue, deadline, idemKey, md),
		}, id)
	}
	if err != nil {
		return c.sendError(ctx, svc, topic, err)
	}

	select {
	case m := <-ch:
		return decodeReply(m, out, dispatch.ParseCallOptions(opts))
	case err := <-failed:
		return c.sendError(ctx, svc, topic, err)
	case <-ctx.Done():
		st := status.FromContextError(ctx.Err())
		if st.Code() == codes.DeadlineExceeded {
			return status.Errorf(codes.DeadlineExceeded, "no reply from %s within the deadline: no instance answered the request on topic %s (call id %s%s); check that the service is running and keeping up", svc, topic, id, requestIDNote(md))
		}
		return st.Err()
	case <-c.done:
		return status.Errorf(codes.Unavailable, "kafka: client connection closed while %s was waiting for its reply", method)
	}
}

// methodValue is the purista-method header value of a full method name.
func (c *ClientConn) methodValue(method string) []byte {
	if v, ok := c.methodValues[method]; ok {
		return v
	}
	return []byte(method)
}

// requestIDNote names the caller's X-Request-Id, when the call has one, in
// a message that also gives the record's call id: the former is the id the
// HTTP client and the logs know.
func requestIDNote(md metadata.MD) string {
	if v := md.Get("x-request-id"); len(v) > 0 {
		return ", request id " + v[0]
	}
	return ""
}

func (c *ClientConn) sendError(ctx context.Context, svc, topic string, err error) error {
	var missing errTopicMissing
	switch {
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.As(err, &missing):
		return status.Errorf(codes.Unavailable, "request topic %s of %s does not exist: provision it with `purista topics ensure` or start the client or server with kafka.WithEnsureTopics", topic, svc)
	case errors.Is(err, errProducerClosed):
		return status.Error(codes.Unavailable, "kafka: client connection is closed")
	case denied(err):
		return c.cfg.permissionDenied(fmt.Sprintf("write to topic %s, the request topic of %s", topic, svc), err)
	case errors.Is(err, kafka.MessageSizeTooLarge), errors.Is(err, kafka.RecordListTooLarge):
		return status.Errorf(codes.ResourceExhausted, "request to %s is larger than the topic %s accepts (message.max.bytes, 1 MiB by default): send less per call or raise the topic's max.message.bytes", svc, topic)
	}
	return status.Errorf(codes.Unavailable, "kafka: write request to topic %s: %v", topic, err)
}

func decodeReply(m kafka.Message, out proto.Message, co dispatch.CallOptions) error {
	rs := decodeReplyHeaders(m.Headers)
	co.Deliver(rs.header, rs.trailer)
	if !rs.hasCode {
		return status.Error(codes.Internal, "kafka: reply has no purista-status header: the server does not speak the purista protocol")
	}
	if err := rs.err(); err != nil {
		return err
	}
	if err := proto.Unmarshal(m.Value, out); err != nil {
		return status.Errorf(codes.Internal, "kafka: reply does not decode as %T: %v", out, err)
	}
	return nil
}

// Ready reports whether calls would go through now: a broker answers, the
// request topics of every service of its contracts (WithContracts) exist,
// and every partition of them and of this client's reply topic has a
// leader that answers. Each broker round trip is bounded by a second.
func (c *ClientConn) Ready(ctx context.Context) error {
	specs := servicesTopics(c.base, c.contracts.Services())
	topics := make([]string, 0, len(specs)+1)
	for _, s := range specs {
		topics = append(topics, s.Name)
	}
	return leadersReady(ctx, c.base, append(topics, c.replyTopic))
}

// Close fails pending calls with UNAVAILABLE, stops reading replies and
// deletes the reply topic.
func (c *ClientConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	c.endLoops()
	c.mu.Unlock()
	c.loop.Wait()
	err := c.reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, derr := c.kc.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{c.replyTopic}}); derr != nil {
		c.cfg.logger.Warn("kafka: reply topic not deleted; it expires by retention or `purista topics gc`", "topic", c.replyTopic, "error", derr)
	}
	c.close()
	return err
}

// RequestTopic returns the topic this client sends a service's calls to.
func (c *ClientConn) RequestTopic(service string) string { return c.requestTopic(service) }

// TopicsReady reports whether calls to topics would go through now: a
// broker answers, every topic exists, and every partition of them and of
// this client's reply topic has a leader that answers.
func (c *ClientConn) TopicsReady(ctx context.Context, topics []string) error {
	return leadersReady(ctx, c.base, append(append([]string(nil), topics...), c.replyTopic))
}
