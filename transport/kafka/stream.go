package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista/internal/dispatch"
)

// Server streaming, as specified in docs/protocol.md: the request is an
// ordinary request record; the server answers with numbered reply records
// and a final status record; the client grants credit (and cancels) with
// control records on a topic the serving instance owns.
const (
	hdrStreamWindow  = "purista-stream-window"
	hdrStreamSeq     = "purista-stream-seq"
	hdrStreamControl = "purista-stream-control"
	hdrStreamAck     = "purista-stream-ack"
	hdrStreamCancel  = "purista-stream-cancel"

	defaultStreamWindow = 64
	maxStreamWindow     = 4096
)

// ---- server side ----

// streamServer is a Server's control topic and its streams in progress.
type streamServer struct {
	mu      sync.Mutex
	started bool
	stopped bool
	topic   string
	reader  *kafka.Reader
	active  map[string]*activeStream
	cancel  context.CancelFunc
	loop    sync.WaitGroup
}

type activeStream struct {
	acked  atomic.Int64
	credit chan struct{}
	cancel context.CancelFunc
}

// startStreams creates this instance's stream control topic and reads it,
// when a registered service has server-streaming methods.
func (s *Server) startStreams(ctx context.Context) error {
	if !s.disp.HasStreams() {
		return nil
	}
	ss := &s.streams
	topic := s.cfg.topicPrefix + StreamTopicPrefix + s.cfg.clientID
	if _, err := ensureTopics(ctx, s.base, []TopicSpec{{
		Name: topic, Partitions: 1, ReplicationFactor: s.cfg.replication,
		Config: map[string]string{"retention.ms": strconv.FormatInt(time.Hour.Milliseconds(), 10)},
	}}); err != nil {
		return fmt.Errorf("kafka: create stream control topic %s: %w", topic, err)
	}
	start, err := lastOffset(ctx, s.base, topic)
	if err != nil {
		return err
	}
	// A keepalive record now and every minute marks the topic as in use, so
	// CollectIdleTopics removes it only once this instance is gone.
	if err := writeKeepalive(ctx, s.prod, topic, s.cfg.clientID); err != nil {
		return fmt.Errorf("kafka: write to stream control topic %s: %w", topic, err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: s.brokers, Topic: topic, Partition: 0, Dialer: s.dialer,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond,
		ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
	})
	if err := r.SetOffset(start); err != nil {
		_ = r.Close()
		return fmt.Errorf("kafka: position stream control reader: %w", err)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.stopped {
		_ = r.Close()
		return nil
	}
	ss.started, ss.topic, ss.reader = true, topic, r
	ss.active = map[string]*activeStream{}
	var rctx context.Context
	rctx, ss.cancel = context.WithCancel(context.Background())
	ss.loop.Add(2)
	go s.readControl(rctx, r)
	go func() {
		defer ss.loop.Done()
		keepaliveLoop(rctx, s.prod, topic, s.cfg.clientID, s.cfg.logger)
	}()
	return nil
}

// lastOffset returns the end offset of partition 0 of topic, waiting for a
// new topic's leader.
func lastOffset(ctx context.Context, b *base, topic string) (int64, error) {
	deadline := time.Now().Add(b.cfg.dialTimeout)
	for {
		resp, err := b.kc.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
		if err == nil {
			for _, po := range resp.Topics[topic] {
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
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("kafka: read the end offset of %s: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-timeAfter(50):
		}
	}
}

func (s *Server) readControl(ctx context.Context, r *kafka.Reader) {
	ss := &s.streams
	defer ss.loop.Done()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.cfg.logger.Warn("kafka: reading stream control records failed; retrying", "topic", ss.topic, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-timeAfter(100):
			}
			continue
		}
		id, _ := headerValue(m.Headers, hdrCorrelationID)
		ss.mu.Lock()
		as := ss.active[id]
		ss.mu.Unlock()
		if as == nil {
			continue // the stream ended
		}
		if _, ok := headerValue(m.Headers, hdrStreamCancel); ok {
			as.cancel()
			continue
		}
		if v, ok := headerValue(m.Headers, hdrStreamAck); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				for {
					cur := as.acked.Load()
					if n <= cur || as.acked.CompareAndSwap(cur, n) {
						break
					}
				}
				select {
				case as.credit <- struct{}{}:
				default:
				}
			}
		}
	}
}

// stopStreams stops reading control records and deletes the control
// topic. The server's handlers have ended by then.
func (s *Server) stopStreams() {
	ss := &s.streams
	ss.mu.Lock()
	if ss.stopped {
		ss.mu.Unlock()
		return
	}
	ss.stopped = true
	started := ss.started
	ss.mu.Unlock()
	if !started {
		return
	}
	ss.cancel()
	ss.loop.Wait()
	_ = ss.reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.kc.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{ss.topic}}); err != nil {
		s.cfg.logger.Warn("kafka: stream control topic not deleted; it expires by retention", "topic", ss.topic, "error", err)
	}
}

// serveStream answers a request for a method Lookup did not find among
// the unary ones. It returns false when the method is no streaming method
// either, so the caller replies with Lookup's error.
func (s *Server) serveStream(h requestHeaders, m kafka.Message) bool {
	sm, err := s.disp.LookupStream(h.method)
	if err != nil {
		if strings.Contains(err.Error(), dispatch.ClientStreamingUnimplemented) {
			s.reply(h, dispatch.Result{Err: err})
			return true
		}
		return false
	}
	ss := &s.streams
	ss.mu.Lock()
	control := ss.topic
	ss.mu.Unlock()
	if control == "" {
		s.reply(h, dispatch.Result{Err: status.Errorf(codes.Unavailable, "server for %s is stopping", h.method)})
		return true
	}
	window := int64(defaultStreamWindow)
	if v, ok := headerValue(m.Headers, hdrStreamWindow); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			window = min(n, maxStreamWindow)
		}
	}
	deadline := h.deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(s.contracts.MethodTimeout(h.method, s.cfg.defaultTimeout))
	}
	ctx, cancel := context.WithDeadline(s.handlerCtx, deadline)
	defer cancel()
	ctx = metadata.NewIncomingContext(ctx, h.md)
	as := &activeStream{credit: make(chan struct{}, 1), cancel: cancel}
	ss.mu.Lock()
	ss.active[h.id] = as
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		delete(ss.active, h.id)
		ss.mu.Unlock()
	}()

	var seq int64
	first := true
	base := func(n int64) []kafka.Header {
		hs := []kafka.Header{
			{Key: hdrVersion, Value: []byte(protocolVersion)},
			{Key: hdrCorrelationID, Value: []byte(h.id)},
			{Key: hdrStreamSeq, Value: strconv.AppendInt(nil, n, 10)},
		}
		if first {
			hs = append(hs, kafka.Header{Key: hdrStreamControl, Value: []byte(control)})
		}
		return hs
	}
	send := func(msg any, hdr metadata.MD) error {
		pm, ok := msg.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "handler for %s sent %T, not a protobuf message", h.method, msg)
		}
		body, err := proto.Marshal(pm)
		if err != nil {
			return status.Errorf(codes.Internal, "marshal message of %s: %v", h.method, err)
		}
		seq++
		// Flow control: at most window records beyond the client's
		// acknowledgement.
		for seq > as.acked.Load()+window {
			select {
			case <-as.credit:
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
		headers := appendMD(base(seq), hdrHeaderPrefix, hdr)
		first = false
		if err := s.prod.send(ctx, h.replyTo, 0, kafka.Message{Value: body, Headers: headers}); err != nil {
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return status.Errorf(codes.Unavailable, "write stream message to %s: %v", h.replyTo, err)
		}
		return nil
	}
	res := s.disp.CallStream(ctx, sm, func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("%T is not a protobuf message", v)
		}
		return proto.Unmarshal(m.Value, msg)
	}, send)

	st := status.Convert(res.Err)
	headers := append(base(seq+1), kafka.Header{Key: hdrStatus, Value: strconv.AppendInt(nil, int64(st.Code()), 10)})
	if st.Code() != codes.OK {
		headers = append(headers, kafka.Header{Key: hdrMessage, Value: []byte(st.Message())})
		if b, err := proto.Marshal(st.Proto()); err == nil {
			headers = append(headers, kafka.Header{Key: hdrStatusBin, Value: b})
		}
	}
	headers = appendMD(headers, hdrHeaderPrefix, res.Header)
	headers = appendMD(headers, hdrTrailerPrefix, res.Trailer)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := s.prod.send(wctx, h.replyTo, 0, kafka.Message{Headers: headers}); err != nil {
		s.stats.replyFailed.Add(1)
		s.cfg.logger.Warn("kafka: final stream record not written", "reply_to", h.replyTo, "method", h.method, "id", h.id, "request_id", h.requestID(), "error", err)
		return true
	}
	s.stats.handled.Add(1)
	return true
}

// ---- client side ----

// clientStreams are a ClientConn's streams in progress, by request id.
type clientStreams struct {
	mu sync.Mutex
	m  map[string]*clientStream
}

type clientStream struct {
	c      *ClientConn
	ctx    context.Context
	cancel context.CancelFunc
	method string
	id     string
	window int64
	co     dispatch.CallOptions
	recs   chan kafka.Message

	sent        bool
	headerReady chan struct{}
	headerOnce  sync.Once
	header      metadata.MD

	// Guarded by recvMu (RecvMsg and Header).
	recvMu    sync.Mutex
	peeked    *kafka.Message
	expected  int64
	acked     int64
	control   string
	done      bool
	finalSeen bool
	final     error
	trailer   metadata.MD
	overflow  atomic.Bool
}

// newStream opens a server-streaming call. Client- and bidi-streaming
// methods are refused: a request waiting in a topic cannot be followed by
// more messages that another instance might take.
func (c *ClientConn) newStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if desc != nil && desc.ClientStreams {
		return nil, status.Errorf(codes.Unimplemented, "method %s %s", method, dispatch.ClientStreamingUnimplemented)
	}
	if _, _, ok := dispatch.SplitMethod(method); !ok {
		return nil, status.Errorf(codes.Unimplemented, "malformed method name %q: want /package.Service/Method", method)
	}
	if _, err := c.contracts.Require(method); err != nil {
		return nil, err
	}
	ctx, cancel := c.contracts.WithDefaultTimeout(ctx, method, c.cfg.defaultTimeout)
	ctx, cancel2 := context.WithCancel(ctx)
	cs := &clientStream{
		c: c, ctx: ctx, method: method, id: randomHex(16), window: defaultStreamWindow,
		cancel: func() { cancel2(); cancel() }, co: dispatch.ParseCallOptions(opts),
		recs: make(chan kafka.Message, defaultStreamWindow+1), headerReady: make(chan struct{}), expected: 1,
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		cs.cancel()
		return nil, status.Error(codes.Unavailable, "kafka: client connection is closed")
	}
	c.streams.mu.Lock()
	if c.streams.m == nil {
		c.streams.m = map[string]*clientStream{}
	}
	c.streams.m[cs.id] = cs
	c.streams.mu.Unlock()
	return cs, nil
}

// deliverStream hands a reply record to its stream. It returns false when
// no stream of this client has that id; a record of an abandoned stream
// that names the server's control topic is answered with a cancel, so the
// server stops (the client gave up before the stream's first record).
func (c *ClientConn) deliverStream(id string, m kafka.Message) bool {
	c.streams.mu.Lock()
	cs := c.streams.m[id]
	c.streams.mu.Unlock()
	if cs == nil {
		_, final := headerValue(m.Headers, hdrStatus)
		if control, ok := headerValue(m.Headers, hdrStreamControl); ok && !final {
			go c.sendControl(control, id, kafka.Header{Key: hdrStreamCancel, Value: []byte("1")})
		}
		return false
	}
	select {
	case cs.recs <- m:
	default:
		// The server sent beyond the window: drop, and RecvMsg reports
		// the gap instead of letting a fast server fill this memory.
		cs.overflow.Store(true)
	}
	return true
}

func (c *ClientConn) sendControl(topic, id string, h kafka.Header) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.prod.send(ctx, topic, 0, kafka.Message{Headers: []kafka.Header{
		{Key: hdrVersion, Value: []byte(protocolVersion)},
		{Key: hdrCorrelationID, Value: []byte(id)},
		h,
	}})
	if err != nil {
		c.cfg.logger.Debug("kafka: stream control record not written", "topic", topic, "error", err)
	}
}

func (cs *clientStream) Context() context.Context { return cs.ctx }

func (cs *clientStream) CloseSend() error { return nil }

// SendMsg sends the call's one request.
func (cs *clientStream) SendMsg(m any) error {
	if cs.sent {
		return status.Errorf(codes.Internal, "stream %s: a server-streaming call sends one request", cs.method)
	}
	cs.sent = true
	req, body, err := dispatch.StreamRequest(cs.method, m)
	if err != nil {
		return cs.end(err)
	}
	svc, _, _ := dispatch.SplitMethod(cs.method)
	var key []byte
	if _, pm, ok := cs.c.contracts.Method(cs.method); ok && pm.PartitionKey != nil {
		key = pm.PartitionKey(req)
	}
	md, _ := metadata.FromOutgoingContext(cs.ctx)
	deadline, _ := cs.ctx.Deadline()
	headers := append(encodeRequestHeaders([]byte(cs.id), cs.c.methodValue(cs.method), cs.c.replyToValue, deadline, "", md),
		kafka.Header{Key: hdrStreamWindow, Value: strconv.AppendInt(nil, cs.window, 10)})
	topic := cs.c.requestTopic(svc)
	cs.c.stats.calls.Add(1)
	part, err := cs.c.prod.pickPartition(cs.ctx, topic, key)
	if err == nil {
		err = cs.c.prod.send(cs.ctx, topic, part, kafka.Message{Key: key, Value: body, Headers: headers})
	}
	if err != nil {
		return cs.end(cs.c.sendError(cs.ctx, svc, topic, err))
	}
	return nil
}

// Header returns the response header metadata, sent with the first
// record, waiting for that record when it has not arrived yet.
func (cs *clientStream) Header() (metadata.MD, error) {
	cs.recvMu.Lock()
	defer cs.recvMu.Unlock()
	select {
	case <-cs.headerReady:
		return cs.header, nil
	default:
	}
	if cs.done {
		return nil, cs.final
	}
	rec, err := cs.next()
	if err != nil {
		return nil, err
	}
	cs.noteHeader(rec)
	cs.peeked = &rec
	return cs.header, nil
}

// next returns the next record: one Header peeked at, or one from the
// reply reader.
func (cs *clientStream) next() (kafka.Message, error) {
	if cs.peeked != nil {
		rec := *cs.peeked
		cs.peeked = nil
		return rec, nil
	}
	select {
	case rec := <-cs.recs:
		return rec, nil
	case <-cs.ctx.Done():
		err := status.FromContextError(cs.ctx.Err()).Err()
		if status.Code(err) == codes.DeadlineExceeded {
			err = status.Errorf(codes.DeadlineExceeded, "stream %s did not end within its deadline after %d messages", cs.method, cs.expected-1)
		}
		return kafka.Message{}, cs.end(err)
	case <-cs.c.done:
		return kafka.Message{}, cs.end(status.Errorf(codes.Unavailable, "kafka: client connection closed during stream %s", cs.method))
	}
}

// noteHeader takes the control topic and the header metadata from the
// stream's first record.
func (cs *clientStream) noteHeader(rec kafka.Message) {
	if cs.control == "" {
		if v, ok := headerValue(rec.Headers, hdrStreamControl); ok {
			cs.control = v
		}
	}
	cs.headerOnce.Do(func() {
		cs.header = metadata.MD{}
		for _, h := range rec.Headers {
			if strings.HasPrefix(h.Key, hdrHeaderPrefix) {
				cs.header.Append(h.Key[len(hdrHeaderPrefix):], string(h.Value))
			}
		}
		close(cs.headerReady)
	})
}

// Trailer returns the trailer metadata once the stream ended.
func (cs *clientStream) Trailer() metadata.MD { return cs.trailer }

func (cs *clientStream) RecvMsg(m any) error {
	cs.recvMu.Lock()
	defer cs.recvMu.Unlock()
	if cs.done {
		return cs.final
	}
	rec, err := cs.next()
	if err != nil {
		return err
	}
	seq := int64(-1)
	if v, ok := headerValue(rec.Headers, hdrStreamSeq); ok {
		seq, _ = strconv.ParseInt(v, 10, 64)
	}
	cs.noteHeader(rec)
	code, isFinal := headerValue(rec.Headers, hdrStatus)
	if seq != cs.expected {
		// A record that names another control topic comes from a second
		// run of the request (redelivered after a server crash): stop it.
		if v, ok := headerValue(rec.Headers, hdrStreamControl); ok && v != cs.control {
			go cs.c.sendControl(v, cs.id, kafka.Header{Key: hdrStreamCancel, Value: []byte("1")})
		}
		what := "lost or reordered"
		if cs.overflow.Load() {
			what = "dropped: the server exceeded the flow-control window"
		}
		return cs.end(status.Errorf(codes.DataLoss, "stream %s: record %d arrived where %d was expected: records of the stream were %s", cs.method, seq, cs.expected, what))
	}
	cs.expected++
	if isFinal {
		cs.finalSeen = true
		cs.trailer = metadata.MD{}
		var stBin []byte
		msg := ""
		for _, h := range rec.Headers {
			switch {
			case strings.HasPrefix(h.Key, hdrTrailerPrefix):
				cs.trailer.Append(h.Key[len(hdrTrailerPrefix):], string(h.Value))
			case h.Key == hdrStatusBin:
				stBin = h.Value
			case h.Key == hdrMessage:
				msg = string(h.Value)
			}
		}
		n, err := strconv.Atoi(code)
		if err != nil {
			return cs.end(status.Errorf(codes.Internal, "stream %s: final record has status %q", cs.method, code))
		}
		if codes.Code(n) == codes.OK {
			return cs.end(io.EOF)
		}
		if len(stBin) > 0 {
			var sp spb.Status
			if err := proto.Unmarshal(stBin, &sp); err == nil {
				return cs.end(status.FromProto(&sp).Err())
			}
		}
		return cs.end(status.Error(codes.Code(n), msg))
	}
	out, ok := m.(proto.Message)
	if !ok {
		return cs.end(status.Errorf(codes.Internal, "stream %s: reply %T is not a protobuf message", cs.method, m))
	}
	if err := proto.Unmarshal(rec.Value, out); err != nil {
		return cs.end(status.Errorf(codes.Internal, "stream %s: message does not decode as %T: %v", cs.method, out, err))
	}
	// Grant credit every half window, so the server rarely waits.
	if seq-cs.acked >= cs.window/2 && cs.control != "" {
		cs.acked = seq
		go cs.c.sendControl(cs.control, cs.id, kafka.Header{Key: hdrStreamAck, Value: strconv.AppendInt(nil, seq, 10)})
	}
	return nil
}

// end finishes the stream with err (io.EOF for success): the server is
// told to stop unless it ended the stream itself, and the stream is
// forgotten.
func (cs *clientStream) end(err error) error {
	if cs.done {
		return cs.final
	}
	cs.done, cs.final = true, err
	if !cs.finalSeen && cs.control != "" {
		go cs.c.sendControl(cs.control, cs.id, kafka.Header{Key: hdrStreamCancel, Value: []byte("1")})
	}
	cs.c.streams.mu.Lock()
	delete(cs.c.streams.m, cs.id)
	cs.c.streams.mu.Unlock()
	cs.headerOnce.Do(func() { close(cs.headerReady) })
	var hdr metadata.MD
	select {
	case <-cs.headerReady:
		hdr = cs.header
	default:
	}
	cs.co.Deliver(hdr, cs.trailer)
	cs.cancel()
	return err
}
