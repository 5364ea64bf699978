package purista

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// EventInfo describes the event a subscriber is handling. Transports put it
// in the subscriber's context; EventFromContext reads it.
type EventInfo struct {
	// ID identifies one publish of the event. A redelivered event has the
	// same ID: subscribers use it to recognise duplicates.
	ID string
	// Name is the event message's full name.
	Name string
	// Topic, Partition and Offset locate the record on Kafka; the
	// in-process transport fills Topic and Offset (its sequence number).
	Topic     string
	Partition int
	Offset    int64
	// Key is the record's partition key, nil when the event has none.
	Key []byte
	// Attempt counts deliveries of this event to this subscriber, from 1.
	Attempt int
	// Published is when the event was published.
	Published time.Time
	// SourceMethod is the full method of the handler that published the
	// event, empty when it was published outside a handler.
	SourceMethod string
}

type eventInfoKey struct{}

// ContextWithEvent returns ctx carrying info. Transports call it.
func ContextWithEvent(ctx context.Context, info EventInfo) context.Context {
	return context.WithValue(ctx, eventInfoKey{}, info)
}

// EventFromContext returns the event a subscriber's context was made for.
func EventFromContext(ctx context.Context) (EventInfo, bool) {
	info, ok := ctx.Value(eventInfoKey{}).(EventInfo)
	return info, ok
}

type publisherKey struct{}

// ContextWithPublisher returns ctx carrying p. Transports give every
// handler's context the publisher of the server that runs it.
func ContextWithPublisher(ctx context.Context, p Publisher) context.Context {
	return context.WithValue(ctx, publisherKey{}, p)
}

// PublisherFromContext returns the publisher of the server running the
// handler whose context ctx is, so a handler publishes with
//
//	pb.PublishOrderPlaced(ctx, purista.PublisherFromContext(ctx), ev)
//
// Events published so carry the handler's method and trace context. Outside
// a handler it returns a publisher whose every Publish fails with
// FAILED_PRECONDITION.
func PublisherFromContext(ctx context.Context) Publisher {
	if p, ok := ctx.Value(publisherKey{}).(Publisher); ok && p != nil {
		return p
	}
	return noPublisher{}
}

type noPublisher struct{}

func (noPublisher) Publish(_ context.Context, event *Event, _ []byte, _ proto.Message) error {
	name := "an event"
	if event != nil {
		name = event.Name
	}
	return status.Errorf(codes.FailedPrecondition, "publish %s: the context has no publisher: publish from a handler served by a purista transport, or pass the transport's client or server as the Publisher", name)
}

// EventTopic returns the topic of an event: its contract's, or the default
// name when the contract names none.
func EventTopic(e *Event) string {
	if e.Topic != "" {
		return e.Topic
	}
	return DefaultEventTopic(e.Name)
}
