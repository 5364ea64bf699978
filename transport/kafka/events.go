package kafka

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/eventing"
)

// Event and dead-letter header names, as specified in docs/protocol.md.
const (
	hdrEvent        = "purista-event"
	hdrTime         = "purista-time"
	hdrSourceMethod = "purista-source-method"
	hdrRedriveFor   = "purista-redrive-for"
	hdrRedriveOf    = "purista-redrive-of"
	// hdrRedriven marks, in a dead-letter topic, the dead letter it names
	// as re-driven.
	hdrRedriven = "purista-redriven"

	hdrDeadLetterPrefix     = "purista-dead-letter-"
	hdrDeadLetterStatus     = "purista-dead-letter-status"
	hdrDeadLetterStatusBin  = "purista-dead-letter-status-bin"
	hdrDeadLetterSubscriber = "purista-dead-letter-subscriber"
	hdrDeadLetterGroup      = "purista-dead-letter-group"
	hdrDeadLetterAttempts   = "purista-dead-letter-attempts"
	hdrDeadLetterTopic      = "purista-dead-letter-topic"
	hdrDeadLetterPartition  = "purista-dead-letter-partition"
	hdrDeadLetterOffset     = "purista-dead-letter-offset"
	hdrDeadLetterSource     = "purista-dead-letter-source"
	hdrDeadLetterTime       = "purista-dead-letter-time"
)

var (
	_ purista.Publisher = (*ClientConn)(nil)
	_ purista.Publisher = (*Server)(nil)
)

// Publish publishes msg as the event ev with the partition key key (nil for
// none), as the generated Publish<Event> functions call it. It returns once
// the broker has stored the record. The outgoing metadata of ctx travels
// with the event, and so does the trace context of the call ctx belongs to
// when the outgoing metadata has none.
func (c *ClientConn) Publish(ctx context.Context, ev *purista.Event, key []byte, msg proto.Message) error {
	return c.base.publishEvent(ctx, ev, key, msg)
}

// Publish publishes msg as the event ev, like ClientConn.Publish. Handlers
// of this server get it through purista.PublisherFromContext; events they
// publish name the handler's method as their source.
func (s *Server) Publish(ctx context.Context, ev *purista.Event, key []byte, msg proto.Message) error {
	err := s.base.publishEvent(ctx, ev, key, msg)
	if err == nil {
		s.subs.stats.published.Add(1)
	}
	return err
}

// eventTopic returns the topic ev is published on.
func (b *base) eventTopic(ev *purista.Event) string {
	return b.cfg.topicPrefix + purista.EventTopic(ev)
}

func (b *base) eventTopicSpec(ev *purista.Event) TopicSpec {
	return TopicSpec{Name: b.eventTopic(ev), Partitions: orDefault(int(ev.Partitions), b.cfg.partitions), ReplicationFactor: orDefault(int(ev.ReplicationFactor), b.cfg.replication)}
}

func (b *base) publishEvent(ctx context.Context, ev *purista.Event, key []byte, msg proto.Message) error {
	if ev == nil || ev.Name == "" {
		return status.Error(codes.InvalidArgument, "publish: no event description: use the generated Publish<Event> function")
	}
	if msg == nil {
		return status.Errorf(codes.InvalidArgument, "publish %s: the message is nil", ev.Name)
	}
	body, err := proto.Marshal(msg)
	if err != nil {
		return status.Errorf(codes.Internal, "publish %s: marshal: %v", ev.Name, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.defaultTimeout)
		defer cancel()
	}
	topic := b.eventTopic(ev)
	id := randomHex(16)
	rec := kafka.Message{
		Key:     key,
		Value:   body,
		Headers: encodeEventHeaders(id, ev.Name, eventing.SourceMethod(ctx), time.Now(), eventing.TraceAndMetadata(ctx)),
	}
	err = b.sendKeyedTraced(ctx, topic, rec, id)
	var missing errTopicMissing
	if errors.As(err, &missing) && b.cfg.ensureTopics {
		if _, err = ensureTopics(ctx, b, []TopicSpec{b.eventTopicSpec(ev)}); err == nil {
			err = b.sendKeyedTraced(ctx, topic, rec, id)
		}
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.As(err, &missing):
		return status.Errorf(codes.Unavailable, "event topic %s of %s does not exist: provision it with `purista topics ensure` or kafka.EnsureTopics, or start the publisher with kafka.WithEnsureTopics", topic, ev.Name)
	case errors.Is(err, errProducerClosed):
		return status.Errorf(codes.Unavailable, "publish %s: the connection is closed", ev.Name)
	}
	return status.Errorf(codes.Unavailable, "publish %s: write to topic %s: %v", ev.Name, topic, err)
}

// sendKeyed writes m to topic, on the partition its key selects.
func (b *base) sendKeyed(ctx context.Context, topic string, m kafka.Message) error {
	part, err := b.prod.pickPartition(ctx, topic, m.Key)
	if err != nil {
		return err
	}
	return b.prod.send(ctx, topic, part, m)
}

func encodeEventHeaders(id, name, source string, at time.Time, md metadata.MD) []kafka.Header {
	h := make([]kafka.Header, 0, 6+len(md))
	h = append(h,
		kafka.Header{Key: hdrVersion, Value: []byte(protocolVersion)},
		kafka.Header{Key: hdrID, Value: []byte(id)},
		kafka.Header{Key: hdrEvent, Value: []byte(name)},
		kafka.Header{Key: hdrContentType, Value: []byte(contentTypeProto)},
		kafka.Header{Key: hdrTime, Value: strconv.AppendInt(nil, at.UnixMilli(), 10)},
	)
	if source != "" {
		h = append(h, kafka.Header{Key: hdrSourceMethod, Value: []byte(source)})
	}
	return appendCallMD(h, md)
}

// eventHeaders is an event record's headers, decoded.
type eventHeaders struct {
	version   string
	id        string
	name      string
	source    string
	published time.Time
	// badTime holds a purista-time header that is not milliseconds since
	// the epoch.
	badTime    string
	redriveFor string
	md         metadata.MD
}

func decodeEventHeaders(hs []kafka.Header) eventHeaders {
	e := eventHeaders{md: metadata.MD{}}
	for _, h := range hs {
		switch {
		case h.Key == hdrVersion:
			e.version = string(h.Value)
		case h.Key == hdrID:
			e.id = string(h.Value)
		case h.Key == hdrEvent:
			e.name = string(h.Value)
		case h.Key == hdrSourceMethod:
			e.source = string(h.Value)
		case h.Key == hdrTime:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				e.published = time.UnixMilli(ms)
			} else {
				e.badTime = string(h.Value)
			}
		case h.Key == hdrRedriveFor:
			e.redriveFor = string(h.Value)
		default:
			e.md = readCallMD(e.md, h)
		}
	}
	return e
}

// withEventInterceptor puts the event interceptor outermost, around the
// user's: handlers get the server as their publisher, and emit_event
// methods publish the response the caller receives.
func (s *Server) withEventInterceptor(user []grpc.UnaryServerInterceptor) []grpc.UnaryServerInterceptor {
	return append([]grpc.UnaryServerInterceptor{eventing.Interceptor(s, s.contracts)}, user...)
}
