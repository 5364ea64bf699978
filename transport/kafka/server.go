package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

type serverConfig struct {
	commonConfig
	interceptors    []grpc.UnaryServerInterceptor
	maxConcurrency  int
	dedupSize       int
	dedupTTL        time.Duration
	heartbeat       time.Duration
	session         time.Duration
	deadLetterTopic string
	events          eventConfig // subscriptions.go
}

// Server takes requests from the request topics of the services registered
// on it, through one consumer group per service, and writes the replies.
type Server struct {
	*base
	cfg  serverConfig
	disp *dispatch.Server

	// Handlers run on a pool of long-lived workers: a goroutine per request
	// would grow a fresh stack for every one.
	work        chan func()
	workerCount atomic.Int64
	workers     sync.WaitGroup
	stopWorkers chan struct{}

	mu             sync.Mutex
	regErr         error
	state          int          // 0 new, 1 serving, 2 stopping
	committers     []*committer // one per group reader, which it holds
	fetchCtx       context.Context
	stopFetch      context.CancelFunc
	handlerCtx     context.Context
	cancelHandlers context.CancelFunc
	fetchers       sync.WaitGroup
	handlers       sync.WaitGroup
	stopped        chan struct{}
	// fatal carries the first error that ends Serve on its own: a group
	// the principal may not join (authz.go).
	fatal     chan error
	fatalOnce sync.Once

	stats       serverStats
	replyPrefix string        // every reply topic starts with it: checkReplyTo
	store       *replyStore   // nil when WithReplyStore(0); replystore.go
	seen        *recentIDs    // request ids taken, until their deadline
	groups      memberships   // of the group readers, for Ready
	topics      []TopicSpec   // the request topics, once serving
	subs        subscriptions // subscriptions.go
	streams     streamServer  // stream.go
}

type serverStats struct {
	handled, expired, malformed, replyFailed, commitFailed, duplicates atomic.Int64
}

// ServerStats are counters of a Server.
type ServerStats struct {
	// Handled counts requests answered.
	Handled int64
	// Expired counts requests skipped because their deadline had passed.
	Expired int64
	// Malformed counts records that were not answerable requests.
	Malformed int64
	// ReplyFailed counts replies that could not be written.
	ReplyFailed int64
	// CommitFailed counts failed offset commits.
	CommitFailed int64
	// Duplicates counts request records skipped because a record with the
	// same request id was taken before: a client wrote it again after a
	// write whose outcome it could not know (a connection lost while the
	// broker stored it).
	Duplicates int64
	// ProducerRetries counts produce requests written again after a
	// retriable failure (a closed connection, a leader moving).
	ProducerRetries int64
	// ProduceRequests and RecordsProduced count the produce requests sent
	// (replies, dead letters) and the records they carried.
	ProduceRequests, RecordsProduced int64
	// StoredReplies counts keyed calls answered from the reply store (a
	// key run before, here or on another instance) without running the
	// handler; StoreFailed counts replies that could not be stored.
	StoredReplies, StoreFailed int64
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// NewServer returns a Server for the brokers. Register services on it, then
// call Serve.
func NewServer(brokers []string, opts ...ServerOption) (*Server, error) {
	cfg := serverConfig{
		commonConfig:   defaultCommon(),
		maxConcurrency: 512,
		dedupSize:      10000,
		dedupTTL:       10 * time.Minute,
		heartbeat:      500 * time.Millisecond,
		session:        6 * time.Second,
	}
	for _, o := range opts {
		o.applyServer(&cfg)
	}
	if cfg.maxConcurrency < 1 {
		return nil, fmt.Errorf("kafka: max concurrent requests %d must be at least 1", cfg.maxConcurrency)
	}
	if cfg.heartbeat <= 0 || cfg.session <= cfg.heartbeat {
		return nil, fmt.Errorf("kafka: group timings heartbeat %v, session %v: both must be positive and the session longer than the heartbeat", cfg.heartbeat, cfg.session)
	}
	if cfg.deadLetterTopic != "" {
		if err := purista.ValidateTopic(cfg.deadLetterTopic); err != nil {
			return nil, fmt.Errorf("kafka: dead-letter topic: %w", err)
		}
	}
	b, err := newBase(brokers, cfg.commonConfig)
	if err != nil {
		return nil, err
	}
	cfg.commonConfig = b.cfg
	var dd *dispatch.Dedup
	if cfg.dedupSize > 0 {
		dd = dispatch.NewDedup(cfg.dedupSize, cfg.dedupTTL)
	}
	s := &Server{
		base:        b,
		cfg:         cfg,
		work:        make(chan func()),
		stopWorkers: make(chan struct{}),
		stopped:     make(chan struct{}),
		fatal:       make(chan error, 1),
		seen:        newRecentIDs(maxRecentIDs),
		replyPrefix: cfg.topicPrefix + replyTopicPrefix,
	}
	if cfg.replyRetention > 0 {
		// The in-memory window stays, as the store's cache: a key repeated
		// on this instance is answered, or waits for its first run, without
		// a broker round trip.
		size, ttl := max(cfg.dedupSize, 1000), cfg.dedupTTL
		if ttl <= 0 || ttl > cfg.replyRetention {
			ttl = cfg.replyRetention
		}
		s.store = newReplyStore(b, dispatch.NewDedup(size, ttl))
		dd = nil // keyed calls go through the store and its cache
	}
	s.disp = dispatch.NewServer(cfg.logger, dd, b.contracts, s.withEventInterceptor(cfg.interceptors)...)
	s.fetchCtx, s.stopFetch = context.WithCancel(context.Background())
	s.handlerCtx, s.cancelHandlers = context.WithCancel(context.Background())
	if err := s.registerLag(); err != nil { // lag.go
		b.close()
		return nil, fmt.Errorf("kafka: metrics: %w", err)
	}
	return s, nil
}

// RegisterService registers a service implementation, as grpc.Server does.
// It must be called before Serve; an error is returned by Serve.
func (s *Server) RegisterService(sd *grpc.ServiceDesc, impl any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.state != 0 {
		err = fmt.Errorf("kafka: RegisterService(%s) after Serve: register every service before serving", sd.ServiceName)
	} else {
		err = s.disp.Register(sd, impl)
	}
	if err != nil && s.regErr == nil {
		s.regErr = err
	}
}

// Ready reports whether the server takes requests now: Serve has started
// reading the request topics and not stopped, a broker answers, every
// partition of the request topics has a leader that answers (its replies
// and fetches would go through), and this process is a member of each of
// its consumer groups. Each broker round trip is bounded by a second, so a
// broker going away turns it to an error within about a second. It suits a
// readiness probe.
func (s *Server) Ready(ctx context.Context) error {
	s.mu.Lock()
	state, topics := s.state, s.topics
	s.mu.Unlock()
	switch {
	case state == 2:
		return errors.New("kafka: server is stopping")
	case topics == nil:
		return errors.New("kafka: server is not serving yet: Serve has not started, or is still checking its topics")
	}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	if err := leadersReady(ctx, s.base, names); err != nil {
		return err
	}
	return s.groups.check()
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Handled: s.stats.handled.Load(), Expired: s.stats.expired.Load(), Malformed: s.stats.malformed.Load(),
		ReplyFailed: s.stats.replyFailed.Load(), CommitFailed: s.stats.commitFailed.Load(),
		Duplicates: s.stats.duplicates.Load(), ProducerRetries: s.prod.retries.Load(),
		ProduceRequests: s.prod.requests.Load(), RecordsProduced: s.prod.records.Load(),
		StoredReplies: s.store.stored(), StoreFailed: s.store.failed(),
	}
}

// testHookBeforeReaders, set by tests only, runs in Serve just before the
// group readers start.
var testHookBeforeReaders func(*Server)

// Serve joins the consumer groups of the registered services and handles
// requests until ctx ends or Stop or GracefulStop is called. It returns nil
// after a stop, and an error when it cannot start.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.regErr != nil {
		s.mu.Unlock()
		return s.regErr
	}
	switch s.state {
	case 1:
		s.mu.Unlock()
		return errors.New("kafka: Serve called twice: a Server serves once")
	case 2:
		s.mu.Unlock()
		return errors.New("kafka: Serve called after Stop: a stopped Server does not serve again; make a new one with NewServer")
	}
	s.state = 1
	s.mu.Unlock()

	names := s.disp.ServiceNames()
	if len(names) == 0 {
		return errors.New("kafka: no services registered: call pb.RegisterXxxServer(srv, impl) before Serve")
	}
	if err := s.ping(ctx); err != nil {
		return err
	}
	services := make([]*purista.Service, 0, len(names))
	for _, n := range names {
		d, _ := s.contracts.Service(n) // registration required one
		services = append(services, d)
	}
	specs := append(servicesTopics(s.base, services), replyStoreTopics(s.base, services)...)
	if s.cfg.ensureTopics {
		if _, err := ensureTopics(ctx, s.base, specs); err != nil {
			return err
		}
	} else if err := checkTopics(ctx, s.base, specs); err != nil {
		return err
	}
	// Subscriptions and streams check for a stop themselves.
	if err := s.startSubscriptions(ctx); err != nil {
		return err
	}
	if err := s.startStreams(ctx); err != nil {
		return err
	}

	if testHookBeforeReaders != nil {
		testHookBeforeReaders(s)
	}
	s.mu.Lock()
	if s.state == 2 {
		// Stopped while Serve prepared: it found no group reader to
		// close, so none may be started now.
		s.mu.Unlock()
		return nil
	}
	for _, n := range names {
		r := s.groupReader(s.groupID(n), s.requestTopic(n), s.cfg.maxConcurrency)
		c := newCommitter(r, func(partition int, offset int64, err error) {
			s.stats.commitFailed.Add(1)
			s.cfg.logger.Warn("kafka: commit failed; the requests may be delivered again", "topic", r.Config().Topic, "partition", partition, "offset", offset, "error", err)
		})
		s.committers = append(s.committers, c)
		s.fetchers.Add(1)
		go s.fetchLoop(r, c)
	}
	s.topics = specs
	s.mu.Unlock()
	s.cfg.logger.Info("kafka: serving", "services", names, "brokers", s.brokers)

	select {
	case <-ctx.Done():
		s.GracefulStop()
	case <-s.stopped:
	case err := <-s.fatal:
		s.cfg.logger.Error("kafka: stopping", "error", err)
		s.GracefulStop()
		return err
	}
	return nil
}

// fail ends Serve with err (the first one only).
func (s *Server) fail(err error) {
	s.fatalOnce.Do(func() { s.fatal <- err })
}

// groupReader reads topic as a member of group, with the server's group
// timings. A new group starts at the earliest offset, so records written
// before any instance existed are read. Commits are synchronous: a
// committer (tracker.go) gathers the offsets of finished records and
// commits them once per commitInterval.
func (s *Server) groupReader(group, topic string, queue int) *kafka.Reader {
	m := s.groups.add(group)
	info, errs := s.readerLoggers(m)
	return kafka.NewReader(kafka.ReaderConfig{
		GroupBalancers:        []kafka.GroupBalancer{&stickyBalancer{clientID: s.cfg.clientID, m: m}, kafka.RangeGroupBalancer{}},
		Brokers:               s.brokers,
		GroupID:               group,
		Topic:                 topic,
		Dialer:                s.dialer,
		MinBytes:              1,
		MaxBytes:              16 << 20,
		MaxWait:               500 * time.Millisecond,
		QueueCapacity:         queue,
		HeartbeatInterval:     s.cfg.heartbeat,
		SessionTimeout:        s.cfg.session,
		RebalanceTimeout:      s.cfg.session,
		JoinGroupBackoff:      200 * time.Millisecond,
		CommitInterval:        0,
		StartOffset:           kafka.FirstOffset,
		ReadBackoffMin:        10 * time.Millisecond,
		ReadBackoffMax:        250 * time.Millisecond,
		WatchPartitionChanges: true,
		Logger:                info,
		ErrorLogger:           errs,
	})
}

func (s *Server) fetchLoop(r *kafka.Reader, commits *committer) {
	defer s.fetchers.Done()
	keyTails := map[string]chan struct{}{}
	var keyMu sync.Mutex
	for {
		m, err := r.FetchMessage(s.fetchCtx)
		if err != nil {
			if s.fetchCtx.Err() != nil {
				return
			}
			s.cfg.logger.Warn("kafka: fetching requests failed; retrying", "topic", r.Config().Topic, "error", err)
			select {
			case <-s.fetchCtx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		commits.start(m.Partition, m.Offset)
		// Requests with the same key run in the order they were fetched.
		var wait, mine chan struct{}
		if len(m.Key) > 0 {
			mine = make(chan struct{})
			keyMu.Lock()
			wait = keyTails[string(m.Key)]
			keyTails[string(m.Key)] = mine
			keyMu.Unlock()
		}
		s.handlers.Add(1)
		job := func() {
			if wait != nil {
				<-wait
			}
			// The worker moves on once the handler returned; the offset
			// is committable once the reply is written.
			s.handle(m, func() {
				commits.finish(m.Partition, m.Offset)
				s.handlers.Done()
			})
			if mine != nil {
				close(mine)
				keyMu.Lock()
				if keyTails[string(m.Key)] == mine {
					delete(keyTails, string(m.Key))
				}
				keyMu.Unlock()
			}
		}
		if !s.submit(job) {
			// Stopping before it started: not committed, so another
			// instance takes it. Release what waits on it.
			s.handlers.Done()
			if mine != nil {
				close(mine)
			}
			return
		}
	}
}

// submit hands job to an idle worker, starts a worker while fewer than the
// maximum run, or waits for one to become idle. It reports false when the
// server stops taking requests first.
func (s *Server) submit(job func()) bool {
	select {
	case s.work <- job:
		return true
	default:
	}
	if s.workerCount.Add(1) <= int64(s.cfg.maxConcurrency) {
		s.workers.Add(1)
		go s.worker(job)
		return true
	}
	s.workerCount.Add(-1)
	select {
	case s.work <- job:
		return true
	case <-s.fetchCtx.Done():
		return false
	}
}

func (s *Server) worker(job func()) {
	defer s.workers.Done()
	for {
		job()
		select {
		case job = <-s.work:
		case <-s.stopWorkers:
			return
		}
	}
}

// handle answers one request record. It never panics and always calls
// done, once the record may be committed: its reply written or given up,
// or no reply due. The reply of a handled call is written after handle
// returns, so the worker is free for the next request meanwhile.
func (s *Server) handle(m kafka.Message, done func()) {
	h := decodeRequestHeaders(m.Headers)
	if h.id == "" || h.replyTo == "" || h.method == "" {
		s.stats.malformed.Add(1)
		reason := "record is not a purista request: purista-id, purista-reply-to or purista-method header missing"
		s.cfg.logger.Warn("kafka: request skipped", "reason", reason, "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		s.deadLetter(m, reason)
		done()
		return
	}
	if err := s.checkReplyTo(h.replyTo); err != nil {
		s.stats.malformed.Add(1)
		reason := fmt.Sprintf("purista-reply-to %q refused: %v", h.replyTo, err)
		s.cfg.logger.Warn("kafka: request refused; no reply written", "reason", reason, "method", h.method, "id", h.id, "request_id", h.requestID(), "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		s.deadLetter(m, reason)
		done()
		return
	}
	if h.version != protocolVersion {
		s.replyThen(h, dispatch.Result{Err: status.Errorf(codes.FailedPrecondition, "purista protocol version %q is not supported by this server: it speaks version %s", h.version, protocolVersion)}, done)
		return
	}
	now := time.Now()
	if !h.deadline.IsZero() && !now.Add(replyMargin(m.Time, h.deadline)).Before(h.deadline) {
		// Past its deadline, or so close to it that the reply could not
		// reach the caller in time: running it would only add an effect
		// nobody hears of.
		s.stats.expired.Add(1)
		s.countExpired(h.method)
		s.cfg.logger.Info("kafka: request expired while waiting, or too close to its deadline to answer; not executed", "method", h.method, "id", h.id, "request_id", h.requestID(), "late_by", now.Sub(h.deadline).String())
		done()
		return
	}
	deadline := s.callDeadline(h, now)
	if !s.seen.add(h.id, deadline) {
		// The same request again: the first one's reply answers the
		// caller. Running it twice is what must not happen.
		s.stats.duplicates.Add(1)
		s.cfg.logger.Debug("kafka: request record seen before; skipped", "method", h.method, "id", h.id, "request_id", h.requestID(), "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		done()
		return
	}
	method, err := s.disp.Lookup(h.method)
	if err != nil {
		if !s.serveStream(h, m) { // stream.go
			s.reply(h, dispatch.Result{Err: err})
		}
		done()
		return
	}
	hctx, cancel := withCallDeadline(s.handlerCtx, deadline)
	defer cancel()
	ctx := metadata.NewIncomingContext(hctx, h.md)
	ctx, obs := s.observeRequest(ctx, m, method, h)
	var res dispatch.Result
	if s.store != nil && h.idempotencyKey != "" {
		// A keyed call runs once per key within the store's retention,
		// whatever the method: the caller chose to name the operation.
		res = s.store.do(ctx, method.Service, method.FullMethod, h.idempotencyKey, h.id, func() dispatch.Result {
			return s.disp.Call(ctx, method, "", dispatch.Decode(m.Value))
		})
	} else {
		res = s.disp.Call(ctx, method, h.idempotencyKey, dispatch.Decode(m.Value))
	}
	s.replyThen(h, res, obs.replied(res.Err, done))
}

// callDeadline is the deadline of the call h belongs to: the caller's, or
// the method's timeout from now when the request carries none.
func (s *Server) callDeadline(h requestHeaders, now time.Time) time.Time {
	if !h.deadline.IsZero() {
		return h.deadline
	}
	return now.Add(s.contracts.MethodTimeout(h.method, s.cfg.defaultTimeout))
}

// maxReplyMargin caps replyMargin.
const maxReplyMargin = time.Second

// replyMargin is how much time a request must have left to be executed: the
// time its reply needs to reach the caller. It is a tenth of the time the
// caller gave the call (from the record's timestamp, the call's start, to
// its deadline), at most maxReplyMargin: a call of 5 s needs 500 ms left,
// one of 200 ms 20 ms. Measured on real Kafka after a broker restart, while
// the instances worked off the backlog the outage left, requests run with up
// to 290 ms left lost their replies to the caller's deadline.
func replyMargin(written, deadline time.Time) time.Duration {
	if written.IsZero() || !written.Before(deadline) {
		return 0
	}
	return min(maxReplyMargin, deadline.Sub(written)/10)
}

// replyTimeout bounds how long a reply waits for room in the producer's
// queue.
const replyTimeout = 10 * time.Second

// reply writes the reply of a call and waits until it is written.
func (s *Server) reply(h requestHeaders, res dispatch.Result) {
	written := make(chan struct{})
	s.replyThen(h, res, func() { close(written) })
	select {
	case <-written:
	case <-s.prod.done:
	}
}

// replyThen queues the reply of a call and calls then once it is written
// or given up. then runs on the producer's goroutine: it must not block.
func (s *Server) replyThen(h requestHeaders, res dispatch.Result, then func()) {
	st := status.Convert(res.Err)
	var body []byte
	if raw, ok := res.Response.(storedBody); ok && res.Err == nil {
		body = raw // a stored reply: already encoded
	} else if res.Err == nil {
		msg, ok := res.Response.(proto.Message)
		if !ok {
			st = status.Newf(codes.Internal, "handler for %s returned %T, not a protobuf message", h.method, res.Response)
		} else if b, err := proto.Marshal(msg); err != nil {
			st = status.Newf(codes.Internal, "marshal response of %s: %v", h.method, err)
		} else {
			body = b
		}
	}
	if st.Code() != codes.OK {
		body = nil
	}
	msg := kafka.Message{Value: body, Headers: replyHeaders(h, st, res.Header, res.Trailer)}
	// The reply is written again after retriable failures for as long as
	// the caller waits for it.
	deadline := s.callDeadline(h, time.Now())
	s.prod.sendThen(h.replyTo, 0, msg, deadline, replyTimeout, func(err error) {
		if errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge) {
			// Tell the caller instead of leaving it to time out; off the
			// producer's goroutine, which must not wait for itself.
			go func() {
				too := status.Newf(codes.ResourceExhausted, "response of %s (%d bytes) is larger than the reply topic accepts (message.max.bytes): return less per call or raise the limit", h.method, len(body))
				s.cfg.logger.Warn("kafka: reply too large", "method", h.method, "bytes", len(body))
				ctx, cancel := context.WithDeadline(context.Background(), deadline)
				defer cancel()
				s.replyWritten(h, s.prod.send(ctx, h.replyTo, 0, kafka.Message{Headers: replyHeaders(h, too, nil, nil)}))
				then()
			}()
			return
		}
		s.replyWritten(h, err)
		then()
	})
}

// replyWritten counts a reply written, or logs why it was not.
func (s *Server) replyWritten(h requestHeaders, err error) {
	if err != nil {
		s.stats.replyFailed.Add(1)
		s.cfg.logger.Warn("kafka: reply not written until the caller's deadline; the caller times out", "reply_to", h.replyTo, "method", h.method, "id", h.id, "request_id", h.requestID(), "error", err)
		return
	}
	s.stats.handled.Add(1)
}

// checkReplyTo refuses a reply topic that is not a client's reply topic by
// the protocol's naming rule (docs/protocol.md): a reply is never written
// into a request, event or any other topic a request names.
func (s *Server) checkReplyTo(topic string) error {
	prefix := s.replyPrefix
	if !strings.HasPrefix(topic, prefix) || len(topic) == len(prefix) {
		return fmt.Errorf("a reply topic is named %s<client id>", prefix)
	}
	if err := validTopicPart(topic[len(prefix):]); err != nil {
		return fmt.Errorf("client id part: %w", err)
	}
	return nil
}

func replyHeaders(h requestHeaders, st *status.Status, header, trailer metadata.MD) []kafka.Header {
	headers := make([]kafka.Header, 0, 6+len(header)+len(trailer))
	headers = append(headers,
		kafka.Header{Key: hdrVersion, Value: versionValue},
		kafka.Header{Key: hdrCorrelationID, Value: h.idValue},
	)
	headers = appendStatusHeaders(headers, st)
	headers = appendMD(headers, hdrHeaderPrefix, header)
	return appendMD(headers, hdrTrailerPrefix, trailer)
}

func (s *Server) deadLetter(m kafka.Message, reason string) {
	if s.cfg.deadLetterTopic == "" {
		return
	}
	headers := append(append([]kafka.Header(nil), m.Headers...),
		kafka.Header{Key: hdrDeadLetterReason, Value: []byte(reason)},
		kafka.Header{Key: "purista-dead-letter-source", Value: []byte(fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset))},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	part, err := s.prod.pickPartition(ctx, s.cfg.deadLetterTopic, m.Key)
	if err == nil {
		err = s.prod.send(ctx, s.cfg.deadLetterTopic, part, kafka.Message{Key: m.Key, Value: m.Value, Headers: headers})
	}
	if err != nil {
		s.cfg.logger.Error("kafka: dead letter not written", "topic", s.cfg.deadLetterTopic, "error", err)
	}
}

// GracefulStop stops taking requests, waits for the ones in progress to be
// answered, commits their offsets and leaves the consumer groups, so other
// instances take over the partitions at once.
func (s *Server) GracefulStop() { s.stop(false) }

// Stop is GracefulStop that also cancels the contexts of handlers in
// progress; their callers get the handlers' errors.
func (s *Server) Stop() { s.stop(true) }

func (s *Server) stop(cancelHandlers bool) {
	s.mu.Lock()
	if s.state == 2 {
		s.mu.Unlock()
		<-s.stopped
		return
	}
	s.state = 2
	committers := s.committers
	s.mu.Unlock()

	s.stopFetch()
	if cancelHandlers {
		s.cancelHandlers()
	}
	s.stopSubscriptions()
	s.fetchers.Wait()
	s.handlers.Wait()
	close(s.stopWorkers)
	s.workers.Wait()
	// Every handler has finished: commit their offsets before leaving.
	leaveGroups(committers)
	s.stopStreams()
	s.cancelHandlers()
	s.close()
	close(s.stopped)
}
