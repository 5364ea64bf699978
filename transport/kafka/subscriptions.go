package kafka

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/eventing"
)

// eventConfig configures a server's subscriptions; zero values mean the
// defaults.
type eventConfig struct {
	retry       eventing.Retry
	timeout     time.Duration
	concurrency int
}

const defaultEventConcurrency = 64

// WithEventRetry sets how often a subscriber is invoked with an event it
// failed before the event is dead-lettered (default 5 attempts), and the
// backoff between attempts: firstBackoff after the first failure, doubling
// up to maxBackoff (defaults 100 ms and 5 s).
func WithEventRetry(maxAttempts int, firstBackoff, maxBackoff time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		r := eventing.Retry{MaxAttempts: maxAttempts, InitialBackoff: firstBackoff, MaxBackoff: maxBackoff}
		if err := r.Validate(); err != nil {
			c.errs = append(c.errs, fmt.Errorf("kafka: WithEventRetry(%d, %v, %v): %w", maxAttempts, firstBackoff, maxBackoff, err))
			return
		}
		c.events.retry = r
	})
}

// WithEventTimeout sets the deadline of each attempt to handle an event for
// subscribers whose contract declares no timeout (default: the server's
// default timeout, 30 s).
func WithEventTimeout(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("kafka: event timeout %v must be positive", d))
			return
		}
		c.events.timeout = d
	})
}

// WithEventConcurrency bounds how many events a server's subscribers handle
// at once (default 64). Events with the same partition key are handled one
// at a time whatever the bound.
func WithEventConcurrency(n int) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("kafka: event concurrency %d must be at least 1", n))
			return
		}
		c.events.concurrency = n
	})
}

// SubscriptionGroup returns the consumer group the instances of service
// share to receive the event named event (before any topic prefix).
func SubscriptionGroup(service, event string) string {
	return "purista.sub." + service + "." + event
}

// DeadLetterTopic returns the dead-letter topic of a subscribing service
// (before any topic prefix).
func DeadLetterTopic(service string) string { return "purista.dlq." + service }

func (b *base) subscriptionGroup(service, event string) string {
	return b.cfg.topicPrefix + SubscriptionGroup(service, event)
}

func (b *base) deadLetterTopic(service string) string {
	return b.cfg.topicPrefix + DeadLetterTopic(service)
}

// deadLetterTopics returns the dead-letter topics of the services that
// subscribe to an event.
func deadLetterTopics(b *base, services []*purista.Service) []TopicSpec {
	var specs []TopicSpec
	for _, s := range services {
		for _, m := range s.Methods {
			if m.Subscribe != nil {
				specs = append(specs, TopicSpec{Name: b.deadLetterTopic(s.Name), Partitions: b.cfg.partitions, ReplicationFactor: b.cfg.replication})
				break
			}
		}
	}
	return specs
}

// subscriptions are the event consumers of a Server.
type subscriptions struct {
	mu         sync.Mutex
	started    bool
	stopped    bool
	stop       chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc
	committers []*committer // one per group reader, which it holds
	loops      sync.WaitGroup
	ordered    *eventing.Ordered

	stats eventStats
}

type eventStats struct {
	published, delivered, retries, deadLettered, skipped, commitFailed atomic.Int64
}

// EventStats are the event counters of a Server.
type EventStats struct {
	// Published counts events the server published (emit_event responses
	// and handlers publishing through their context).
	Published int64
	// Delivered counts events its subscribers handled successfully.
	Delivered int64
	// Retries counts failed attempts that were retried.
	Retries int64
	// DeadLettered counts events written to a dead-letter topic.
	DeadLettered int64
	// Skipped counts records its subscription groups passed over: other
	// events on a shared topic, re-drives meant for another subscriber.
	Skipped int64
	// CommitFailed counts failed offset commits of subscription groups.
	CommitFailed int64
}

// EventStats returns the server's event counters.
func (s *Server) EventStats() EventStats {
	st := &s.subs.stats
	return EventStats{
		Published: st.published.Load(), Delivered: st.delivered.Load(), Retries: st.retries.Load(),
		DeadLettered: st.deadLettered.Load(), Skipped: st.skipped.Load(), CommitFailed: st.commitFailed.Load(),
	}
}

// subscription is one consumer group: a subscribing service and an event.
type subscription struct {
	s       *Server
	service string
	event   *purista.Event
	subs    []eventing.Subscriber
	topic   string
	group   string
	dlq     string
	reader  *kafka.Reader
	commits *committer
}

// startSubscriptions joins the subscription groups of the registered
// services: one per subscribing service and event. Serve calls it once the
// request topics are known to exist.
func (s *Server) startSubscriptions(ctx context.Context) error {
	groups, err := eventing.Subscribers(s.disp)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if len(groups) == 0 {
		return nil
	}
	var specs []TopicSpec
	seen := map[string]bool{}
	add := func(spec TopicSpec) {
		if !seen[spec.Name] {
			seen[spec.Name] = true
			specs = append(specs, spec)
		}
	}
	for _, g := range groups {
		add(s.eventTopicSpec(g[0].Event))
		add(TopicSpec{Name: s.deadLetterTopic(g[0].Service), Partitions: s.cfg.partitions, ReplicationFactor: s.cfg.replication})
	}
	if s.cfg.ensureTopics {
		if _, err := ensureTopics(ctx, s.base, specs); err != nil {
			return err
		}
	} else if err := checkEventTopics(ctx, s.base, specs); err != nil {
		return err
	}

	limit := s.cfg.events.concurrency
	if limit == 0 {
		limit = defaultEventConcurrency
	}
	sc := &s.subs
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.stopped {
		return nil
	}
	sc.started = true
	sc.stop = make(chan struct{})
	sc.ctx, sc.cancel = context.WithCancel(context.Background())
	sc.ordered = eventing.NewOrdered(limit)
	var names []string
	for _, g := range groups {
		sub := &subscription{
			s:       s,
			service: g[0].Service,
			event:   g[0].Event,
			subs:    g,
			topic:   s.eventTopic(g[0].Event),
			group:   s.subscriptionGroup(g[0].Service, g[0].Event.Name),
			dlq:     s.deadLetterTopic(g[0].Service),
		}
		sub.reader = s.groupReader(sub.group, sub.topic, 0) // kafka-go's default queue
		sub.commits = newCommitter(sub.reader, func(partition int, offset int64, err error) {
			sc.stats.commitFailed.Add(1)
			s.cfg.logger.Warn("kafka: event commit failed; the events may be delivered again", "topic", sub.topic, "partition", partition, "offset", offset, "group", sub.group, "error", err)
		})
		sc.committers = append(sc.committers, sub.commits)
		sc.loops.Add(1)
		go sub.loop()
		names = append(names, sub.group)
	}
	s.cfg.logger.Info("kafka: subscribed", "groups", names)
	return nil
}

// stopSubscriptions stops fetching events, abandons retries waiting for
// their backoff (their records are not committed, so the partition's next
// owner delivers them again), waits for handlers in progress, commits and
// leaves the groups.
func (s *Server) stopSubscriptions() {
	sc := &s.subs
	sc.mu.Lock()
	if sc.stopped {
		sc.mu.Unlock()
		return
	}
	sc.stopped = true
	if !sc.started {
		sc.mu.Unlock()
		return
	}
	close(sc.stop)
	sc.cancel()
	committers := sc.committers
	sc.mu.Unlock()
	sc.loops.Wait()
	sc.ordered.Wait()
	leaveGroups(committers)
}

func (sub *subscription) loop() {
	sc := &sub.s.subs
	defer sc.loops.Done()
	log := sub.s.cfg.logger
	for {
		m, err := sub.reader.FetchMessage(sc.ctx)
		if err != nil {
			if sc.ctx.Err() != nil {
				return
			}
			log.Warn("kafka: fetching events failed; retrying", "topic", sub.topic, "group", sub.group, "error", err)
			select {
			case <-sc.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		sub.commits.start(m.Partition, m.Offset)
		var key []byte
		if len(m.Key) > 0 {
			key = append([]byte(sub.group+"\x00"), m.Key...)
		}
		ok := sc.ordered.Go(sc.stop, key, func(skipped bool) {
			if skipped || !sub.process(m) {
				return // not committed: delivered again to the partition's next owner
			}
			sub.commits.finish(m.Partition, m.Offset)
		})
		if !ok {
			return
		}
	}
}

// process hands one record to the group's subscribers. It returns false
// when it gave up because the server is stopping: the record must not be
// committed.
func (sub *subscription) process(m kafka.Message) bool {
	sc := &sub.s.subs
	h := decodeEventHeaders(m.Headers)
	if h.name != "" && h.name != sub.event.Name && !sub.ownTopic() {
		// Another event sharing a topic named in the contract: not for
		// this subscription.
		sc.stats.skipped.Add(1)
		return true
	}
	if reason := sub.malformed(m, h); reason != "" {
		// Nothing a retry could change: dead-letter it at once, so it is
		// neither lost silently nor blocking the partition.
		return sub.deadLetter(m, sub.subs[0], 0, status.Error(codes.InvalidArgument, reason))
	}
	handled := false
	for _, sb := range sub.subs {
		if h.redriveFor != "" && h.redriveFor != sb.Method.FullMethod {
			continue
		}
		handled = true
		if !sub.deliver(m, h, sb) {
			return false
		}
	}
	if !handled {
		sc.stats.skipped.Add(1)
	}
	return true
}

// ownTopic reports whether the subscription reads the event's default topic,
// which carries no other event.
func (sub *subscription) ownTopic() bool {
	return sub.topic == sub.s.cfg.topicPrefix+purista.DefaultEventTopic(sub.event.Name)
}

// malformed says why an event record cannot be delivered to a subscriber,
// or "" when it can.
func (sub *subscription) malformed(m kafka.Message, h eventHeaders) string {
	switch {
	case h.name == "":
		return "record is not a purista event: the purista-event header is missing"
	case h.name != sub.event.Name:
		return fmt.Sprintf("event %q on topic %s, which carries only %s", h.name, m.Topic, sub.event.Name)
	case h.badTime != "":
		return fmt.Sprintf("purista-time %q is not a time in milliseconds since the Unix epoch", h.badTime)
	}
	// A null value is not refused: kafka-go reads an empty value (an event
	// message with every field unset) as null too, so the two cannot be
	// told apart; both are the empty message.
	return ""
}

func (sub *subscription) deliver(m kafka.Message, h eventHeaders, sb eventing.Subscriber) bool {
	s := sub.s
	sc := &s.subs
	if h.version != "" && h.version != protocolVersion {
		err := status.Errorf(codes.FailedPrecondition, "purista protocol version %q is not supported by this server: it speaks version %s", h.version, protocolVersion)
		return sub.deadLetter(m, sb, 0, err)
	}
	retry := s.cfg.events.retry
	if retry.MaxAttempts == 0 {
		retry = eventing.DefaultRetry
	}
	timeout := s.cfg.events.timeout
	if sb.Method.Contract != nil && sb.Method.Contract.Timeout > 0 {
		timeout = sb.Method.Contract.Timeout
	} else if timeout == 0 {
		timeout = s.cfg.defaultTimeout
	}
	inv := eventing.Invocation{
		Method: sb.Method,
		Info: purista.EventInfo{
			ID: h.id, Name: sub.event.Name, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
			Key: m.Key, Published: h.published, SourceMethod: h.source,
		},
		MD:      h.md,
		Value:   m.Value,
		Timeout: timeout,
	}
	ctx, obs := sub.observeEvent(s.handlerCtx, m, h, sb)
	attempts, err, stopped := eventing.Deliver(sc.stop, retry, func(attempt int) (error, bool) {
		inv.Info.Attempt = attempt
		err, permanent := eventing.Invoke(ctx, s.disp, inv)
		if err != nil && !permanent && attempt < retry.MaxAttempts {
			sc.stats.retries.Add(1)
			obs.series.Retry()
			s.cfg.logger.Debug("kafka: subscriber failed; retrying", "subscriber", sb.Method.FullMethod, "event_id", h.id, "attempt", attempt, "error", err)
		}
		return err, permanent
	})
	obs.done(err, attempts)
	if err == nil {
		sc.stats.delivered.Add(1)
		return true
	}
	if stopped || s.handlerCtx.Err() != nil || isClosed(sc.stop) {
		return false
	}
	return sub.deadLetter(m, sb, attempts, err)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// deadLetter writes m to the service's dead-letter topic. It retries until
// the write succeeds, and gives up only when the server stops (the record
// is then not committed).
func (sub *subscription) deadLetter(m kafka.Message, sb eventing.Subscriber, attempts int, cause error) bool {
	s := sub.s
	sc := &s.subs
	st := status.Convert(cause)
	headers := make([]kafka.Header, 0, len(m.Headers)+12)
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, hdrDeadLetterPrefix) {
			headers = append(headers, h)
		}
	}
	now := time.Now()
	headers = append(headers,
		kafka.Header{Key: hdrDeadLetterReason, Value: []byte(st.Message())},
		kafka.Header{Key: hdrDeadLetterStatus, Value: strconv.AppendInt(nil, int64(st.Code()), 10)},
		kafka.Header{Key: hdrDeadLetterSubscriber, Value: []byte(sb.Method.FullMethod)},
		kafka.Header{Key: hdrDeadLetterGroup, Value: []byte(sub.group)},
		kafka.Header{Key: hdrDeadLetterAttempts, Value: strconv.AppendInt(nil, int64(attempts), 10)},
		kafka.Header{Key: hdrDeadLetterTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: hdrDeadLetterPartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		kafka.Header{Key: hdrDeadLetterOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		kafka.Header{Key: hdrDeadLetterSource, Value: []byte(fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset))},
		kafka.Header{Key: hdrDeadLetterTime, Value: strconv.AppendInt(nil, now.UnixMilli(), 10)},
	)
	if b, err := proto.Marshal(st.Proto()); err == nil {
		headers = append(headers, kafka.Header{Key: hdrDeadLetterStatusBin, Value: b})
	}
	rec := kafka.Message{Key: m.Key, Value: m.Value, Headers: headers}
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.sendKeyed(ctx, sub.dlq, rec)
		cancel()
		if err == nil {
			sc.stats.deadLettered.Add(1)
			s.metrics.Event(sb.Method.FullMethod, sub.event.Name).DeadLetter()
			s.cfg.logger.Warn("kafka: event dead-lettered", "subscriber", sb.Method.FullMethod, "event", sub.event.Name,
				"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "attempts", attempts, "dead_letter_topic", sub.dlq, "error", st.Message())
			return true
		}
		s.cfg.logger.Error("kafka: dead letter not written; retrying (the partition's commit waits)", "topic", sub.dlq, "subscriber", sb.Method.FullMethod, "error", err)
		select {
		case <-sc.stop:
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// checkEventTopics reports an error naming every missing topic of specs.
func checkEventTopics(ctx context.Context, b *base, specs []TopicSpec) error {
	missing, err := missingTopics(ctx, b, specs)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafka: event or dead-letter topics missing: %s: provision them with `purista topics ensure` or kafka.EnsureTopics, or start the server with kafka.WithEnsureTopics", strings.Join(missing, ", "))
	}
	return nil
}
