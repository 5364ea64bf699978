package inproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/eventing"
)

// Events on a Channel keep the semantics of the Kafka transport in memory:
// every service that subscribes to an event gets each event once, its
// instances (the Servers that registered it) share them, events with the
// same partition key are handled in publish order, failures are retried
// with backoff and then kept as dead letters, which Redrive delivers again
// to the failed subscriber only. Events published before a service
// subscribes are delivered to it when it registers, up to the retention
// (WithEventRetention), as a new consumer group reads a topic from its
// start. Nothing survives the process: events in flight when the Channel
// closes are lost.

type eventOptions struct {
	retry        eventing.Retry
	timeout      time.Duration
	concurrency  int
	retention    int
	retentionSet bool
}

const defaultEventRetention = 10000

// WithEventRetry sets how often a subscriber is invoked with an event it
// failed before the event becomes a dead letter (default 5 attempts), and
// the backoff between attempts: firstBackoff after the first failure,
// doubling up to maxBackoff (defaults 100 ms and 5 s). An invalid policy is
// logged and the default used.
func WithEventRetry(maxAttempts int, firstBackoff, maxBackoff time.Duration) Option {
	return func(o *options) {
		o.events.retry = eventing.Retry{MaxAttempts: maxAttempts, InitialBackoff: firstBackoff, MaxBackoff: maxBackoff}
	}
}

// WithEventTimeout sets the deadline of each attempt to handle an event for
// subscribers whose contract declares no timeout (default: the default
// timeout, 30 s).
func WithEventTimeout(d time.Duration) Option { return func(o *options) { o.events.timeout = d } }

// WithEventConcurrency bounds how many events one subscribing service
// handles at once (default 64); events with the same key are handled one at
// a time whatever the bound.
func WithEventConcurrency(n int) Option { return func(o *options) { o.events.concurrency = n } }

// WithEventRetention sets how many events of each event type a Channel
// keeps for services that subscribe later (default 10 000; 0 keeps none).
// It applies to the options given to New.
func WithEventRetention(n int) Option {
	return func(o *options) { o.events.retention, o.events.retentionSet = n, true }
}

func (o *options) eventRetry() eventing.Retry {
	r := o.events.retry
	if r.MaxAttempts == 0 {
		return eventing.DefaultRetry
	}
	if err := r.Validate(); err != nil {
		o.logger.Error("inproc: invalid inproc.WithEventRetry policy; using the default (5 attempts, 100 ms to 5 s): fix the option", "error", err)
		return eventing.DefaultRetry
	}
	return r
}

// DeadLetter is an event a subscriber kept failing.
type DeadLetter struct {
	// ID identifies the dead letter on its Channel.
	ID string
	// Service is the subscribing service, Subscriber the full method that
	// failed.
	Service    string
	Subscriber string
	// Event is the event's full name, EventID its id.
	Event   string
	EventID string
	// Key, Value and Metadata are the event as published.
	Key      []byte
	Value    []byte
	Metadata metadata.MD
	// Attempts is how many times the subscriber was invoked; Status the
	// last error.
	Attempts int
	Status   *status.Status
	// At is when the event became a dead letter.
	At time.Time

	rec *eventRecord
}

var (
	_ purista.Publisher = (*Channel)(nil)
	_ purista.Publisher = (*Client)(nil)
	_ purista.Publisher = (*Server)(nil)
)

// Publish publishes msg as the event ev to every subscribing service on the
// channel. It returns once the event is queued for them.
func (c *Channel) Publish(ctx context.Context, ev *purista.Event, key []byte, msg proto.Message) error {
	return c.publishEvent(ctx, ev, key, msg)
}

// Publish publishes msg as the event ev on the client's channel.
func (cl *Client) Publish(ctx context.Context, ev *purista.Event, key []byte, msg proto.Message) error {
	return cl.ch.publishEvent(ctx, ev, key, msg)
}

// Publish publishes msg as the event ev on the server's channel. Handlers
// get it through purista.PublisherFromContext.
func (s *Server) Publish(ctx context.Context, ev *purista.Event, key []byte, msg proto.Message) error {
	return s.ch.publishEvent(ctx, ev, key, msg)
}

// DeadLetters returns the dead letters of a subscribing service, oldest
// first.
func (c *Channel) DeadLetters(service string) []DeadLetter {
	b := &c.events
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]DeadLetter(nil), b.dead[service]...)
}

// Redrive delivers dead letters again, each to the subscriber that failed
// it only, with fresh attempts, and removes them from the dead letters (a
// failure makes a new one). It returns how many it re-drove; letters no
// longer held (re-driven already) are skipped.
func (c *Channel) Redrive(letters ...DeadLetter) (int, error) {
	b := &c.events
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, status.Error(codes.Unavailable, "in-process channel is closed")
	}
	n := 0
	for _, l := range letters {
		held := b.dead[l.Service]
		i := -1
		for j := range held {
			if held[j].ID == l.ID {
				i = j
			}
		}
		if i < 0 {
			continue
		}
		d := held[i]
		g := b.groups[groupKey(d.Service, d.Event)]
		if g == nil {
			return n, fmt.Errorf("inproc: dead letter %s: %s no longer subscribes to %s", d.ID, d.Service, d.Event)
		}
		b.dead[l.Service] = append(held[:i:i], held[i+1:]...)
		rec := *d.rec
		rec.redriveFor = d.Subscriber
		g.enqueue(&rec)
		n++
	}
	return n, nil
}

// eventBus is a Channel's event machinery.
type eventBus struct {
	mu     sync.Mutex
	closed bool
	stop   chan struct{}
	groups map[string]*subGroup
	log    map[string][]*eventRecord
	dead   map[string][]DeadLetter
	seq    int64
	wg     sync.WaitGroup
}

type eventRecord struct {
	offset     int64
	id         string
	name       string
	source     string
	key        []byte
	value      []byte
	md         metadata.MD
	published  time.Time
	redriveFor string
}

// subGroup is the in-memory counterpart of a consumer group: one
// subscribing service and one event.
type subGroup struct {
	bus     *eventBus
	service string
	event   string
	members []*Server
	subs    map[*Server][]eventing.Subscriber
	rr      int
	queue   []*eventRecord
	wake    chan struct{}
	ordered *eventing.Ordered
}

func groupKey(service, event string) string { return service + "\x00" + event }

func (b *eventBus) init() {
	if b.stop == nil {
		b.stop = make(chan struct{})
		b.groups = map[string]*subGroup{}
		b.log = map[string][]*eventRecord{}
		b.dead = map[string][]DeadLetter{}
	}
}

func (c *Channel) publishEvent(ctx context.Context, ev *purista.Event, key []byte, msg proto.Message) error {
	if ev == nil || ev.Name == "" {
		return status.Error(codes.InvalidArgument, "publish: no event description: use the generated Publish<Event> function")
	}
	if msg == nil {
		return status.Errorf(codes.InvalidArgument, "publish %s: the message is nil", ev.Name)
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	body, err := proto.Marshal(msg)
	if err != nil {
		return status.Errorf(codes.Internal, "publish %s: marshal: %v", ev.Name, err)
	}
	rec := &eventRecord{
		id: randomID(), name: ev.Name, source: eventing.SourceMethod(ctx), key: append([]byte(nil), key...),
		value: body, md: eventing.TraceAndMetadata(ctx).Copy(), published: time.Now(),
	}
	if len(rec.key) == 0 {
		rec.key = nil
	}
	retention := defaultEventRetention
	if o := c.Server.opts.events; o.retentionSet {
		retention = o.retention
	}
	b := &c.events
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return status.Errorf(codes.Unavailable, "publish %s: in-process channel is closed", ev.Name)
	}
	b.init()
	b.seq++
	rec.offset = b.seq
	if retention > 0 {
		l := append(b.log[ev.Name], rec)
		if len(l) > retention {
			l = append(l[:0:0], l[len(l)-retention:]...)
		}
		b.log[ev.Name] = l
	}
	for _, g := range b.groups {
		if g.event == ev.Name {
			g.enqueue(rec)
		}
	}
	return nil
}

// join makes s an instance of service in the subscription groups of the
// events the service subscribes to.
func (b *eventBus) join(s *Server, service string) error {
	all, err := eventing.Subscribers(s.server)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.init()
	for _, subs := range all {
		if subs[0].Service != service {
			continue
		}
		event := subs[0].Event.Name
		g := b.groups[groupKey(service, event)]
		if g == nil {
			limit := s.opts.events.concurrency
			if limit < 1 {
				limit = 64
			}
			g = &subGroup{bus: b, service: service, event: event, subs: map[*Server][]eventing.Subscriber{},
				wake: make(chan struct{}, 1), ordered: eventing.NewOrdered(limit)}
			b.groups[groupKey(service, event)] = g
			// A new group starts at the oldest retained event.
			g.queue = append(g.queue, b.log[event]...)
			b.wg.Add(1)
			go g.run()
		}
		g.members = append(g.members, s)
		g.subs[s] = subs
		g.signal()
	}
	return nil
}

// enqueue appends rec; the bus lock is held.
func (g *subGroup) enqueue(rec *eventRecord) {
	g.queue = append(g.queue, rec)
	g.signal()
}

func (g *subGroup) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// run hands the group's records, in order, to its members.
func (g *subGroup) run() {
	b := g.bus
	defer b.wg.Done()
	for {
		b.mu.Lock()
		var rec *eventRecord
		var member *Server
		if len(g.queue) > 0 && len(g.members) > 0 {
			rec = g.queue[0]
			g.queue[0] = nil
			g.queue = g.queue[1:]
			member = g.pick(rec)
		}
		b.mu.Unlock()
		if rec == nil {
			select {
			case <-g.wake:
				continue
			case <-b.stop:
				g.ordered.Wait()
				return
			}
		}
		var key []byte
		if rec.key != nil {
			key = rec.key
		}
		if !g.ordered.Go(b.stop, key, func(skipped bool) {
			if !skipped {
				g.deliver(member, rec)
			}
		}) {
			g.ordered.Wait()
			return
		}
	}
}

// pick chooses the instance for rec: by key, as a partition has one owner,
// else round-robin. The bus lock is held.
func (g *subGroup) pick(rec *eventRecord) *Server {
	if rec.key != nil {
		h := fnv.New32a()
		h.Write(rec.key)
		return g.members[int(h.Sum32()%uint32(len(g.members)))]
	}
	g.rr++
	return g.members[g.rr%len(g.members)]
}

func (g *subGroup) deliver(s *Server, rec *eventRecord) {
	b := g.bus
	g.bus.mu.Lock()
	subs := g.subs[s]
	g.bus.mu.Unlock()
	retry := s.opts.eventRetry()
	for _, sb := range subs {
		if rec.redriveFor != "" && rec.redriveFor != sb.Method.FullMethod {
			continue
		}
		timeout := s.opts.events.timeout
		if sb.Method.Contract != nil && sb.Method.Contract.Timeout > 0 {
			timeout = sb.Method.Contract.Timeout
		} else if timeout <= 0 {
			timeout = s.opts.defaultTimeout
		}
		inv := eventing.Invocation{
			Method:  sb.Method,
			Info:    purista.EventInfo{ID: rec.id, Name: rec.name, Topic: purista.EventTopic(sb.Event), Offset: rec.offset, Key: rec.key, Published: rec.published, SourceMethod: rec.source},
			MD:      rec.md,
			Value:   rec.value,
			Timeout: timeout,
		}
		attempts, err, stopped := eventing.Deliver(b.stop, retry, func(attempt int) (error, bool) {
			inv.Info.Attempt = attempt
			return eventing.Invoke(context.Background(), s.server, inv)
		})
		if stopped {
			return
		}
		if err != nil {
			st := status.Convert(err)
			s.opts.logger.Warn("inproc: event dead-lettered", "subscriber", sb.Method.FullMethod, "event", rec.name, "event_id", rec.id, "attempts", attempts, "error", st.Message())
			b.mu.Lock()
			b.dead[g.service] = append(b.dead[g.service], DeadLetter{
				ID: randomID(), Service: g.service, Subscriber: sb.Method.FullMethod, Event: rec.name, EventID: rec.id,
				Key: rec.key, Value: rec.value, Metadata: rec.md.Copy(), Attempts: attempts, Status: st, At: time.Now(), rec: rec,
			})
			b.mu.Unlock()
		}
	}
}

// close stops delivering: retries waiting for their backoff are dropped,
// handlers in progress finish.
func (b *eventBus) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.init()
	close(b.stop)
	b.mu.Unlock()
	b.wg.Wait()
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
