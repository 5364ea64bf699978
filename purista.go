// Package purista holds the runtime contract shared by code that
// protoc-gen-purista generates, the transports and the gateway: the
// description of services, methods, HTTP bindings and events taken from the
// .proto contracts.
//
// Generated code declares one value per service (<Service>_PuristaService)
// and per event (<Message>_PuristaEvent). There is no registry: transports,
// the gateway and tools are handed the values they serve or call, as
// grpc-go's RegisterService is handed a ServiceDesc, so what a binary does
// never depends on which packages happen to be linked in.
package purista

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Version is the version of this runtime.
const Version = "0.2.0"

// IsAtLeastVersion0_2_0 is referenced by generated code. Generated code that
// needs a newer runtime references a newer constant and fails to compile
// against this one, naming the version it needs. 0.2.0 dropped the
// registry that code generated for 0.1.0 filled from init functions, so
// that code does not compile against this runtime either: regenerate it.
const IsAtLeastVersion0_2_0 = true

// Service describes a protobuf service as the contract declares it.
type Service struct {
	// Name is the service's full protobuf name, e.g. "users.v1.UsersService".
	Name string
	// RequestTopic is the Kafka topic its requests travel on.
	RequestTopic string
	// Partitions and ReplicationFactor are used when the request topic is
	// provisioned; 0 means the provisioning default.
	Partitions        int32
	ReplicationFactor int16
	// Methods in declaration order.
	Methods []*Method
}

// Method describes one RPC of a Service.
type Method struct {
	// Name is the method's short name, e.g. "GetUser".
	Name string
	// FullMethod is "/" + service name + "/" + Name, as in gRPC.
	FullMethod string
	// Timeout applies to calls made without a deadline; 0 means the
	// transport's default.
	Timeout time.Duration
	// Idempotent methods are answered from the dedup window when a request
	// with the same idempotency key is delivered again.
	Idempotent bool
	// ClientStreaming and ServerStreaming mirror the proto declaration.
	ClientStreaming bool
	ServerStreaming bool
	// PartitionKeyField names the request field whose value keys the request
	// record; PartitionKey extracts it. Both are empty when the method
	// declares none.
	PartitionKeyField string
	PartitionKey      func(req proto.Message) []byte
	// HTTP lists the google.api.http bindings, primary first.
	HTTP []HTTPRule
	// Public marks every HTTP route of the method as reachable without
	// authentication at the gateway.
	Public bool
	// Event is the event the successful response is also published as; nil
	// when none.
	Event *Event
	// Subscribe is the event the method is invoked with, once per event,
	// for every subscribing service; nil when the method subscribes to none.
	Subscribe *Event
	// Retry is how clients retry a keyed call of the method, from the
	// contract's (purista.v1.method).retry; nil leaves it to the client.
	Retry *RetryPolicy
}

// WithIdempotencyKey returns ctx with key as the idempotency key of the
// calls made with it ("idempotency-key" outgoing metadata), on every
// transport: a server runs a key's handler once — within its reply store's
// retention on Kafka, its dedup window in process and over plain gRPC — and
// answers a repeat with the first reply; clients retry a keyed call after
// UNAVAILABLE (RetryPolicy). Use a fresh key per
// logical operation and the same one for every retry of it, such as an
// HTTP Idempotency-Key.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(IdempotencyMetadataKey, key)
	return metadata.NewOutgoingContext(ctx, md)
}

// IdempotencyMetadataKey is the outgoing metadata key that names the
// logical operation of a call (WithIdempotencyKey).
const IdempotencyMetadataKey = "idempotency-key"

// RetryPolicy bounds the retries of a call that carries an idempotency key:
// after UNAVAILABLE or a write whose outcome is unknown, the call is tried
// again after InitialBackoff, then after doubling waits up to MaxBackoff,
// MaxAttempts tries in all, while its deadline allows. A server with a reply
// store answers a retry of a key it ran with the stored reply.
type RetryPolicy struct {
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// Validate reports a policy that cannot work.
func (p RetryPolicy) Validate() error {
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("retry policy: max attempts %d must be at least 1 (1 turns retries off)", p.MaxAttempts)
	case p.InitialBackoff < 0 || p.MaxBackoff < p.InitialBackoff:
		return fmt.Errorf("retry policy: backoff %v up to %v: both must be non-negative and the maximum at least the first", p.InitialBackoff, p.MaxBackoff)
	}
	return nil
}

// Backoff is the wait before try n+1, after try n (n >= 1) failed.
func (p RetryPolicy) Backoff(n int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// DefaultRetryPolicy is a client's policy for keyed calls unless the
// contract or the client sets another: 5 tries, 50 ms backoff doubling up
// to 1 s.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}
}

// HTTPRule is one google.api.http binding.
type HTTPRule struct {
	// Method is the HTTP verb in upper case ("GET", "POST", ...) or the
	// custom verb's name.
	Method string
	// Pattern is the path template, e.g. "/v1/users/{id}".
	Pattern string
	// Body is the request field the HTTP body maps to ("*" for the whole
	// request, "" for none); ResponseBody likewise for the response.
	Body         string
	ResponseBody string
}

// Event describes a message the contract marks as an event.
type Event struct {
	// Name is the message's full protobuf name.
	Name string
	// Topic is the Kafka topic the event is published on.
	Topic string
	// Partitions and ReplicationFactor are used when the topic is
	// provisioned; 0 means the provisioning default.
	Partitions        int32
	ReplicationFactor int16
	// PartitionKeyField names the event field whose value keys the event
	// record; PartitionKey extracts it. Both are empty when the event
	// declares none.
	PartitionKeyField string
	PartitionKey      func(msg proto.Message) []byte
}

// Publisher publishes event messages. Generated Publish<Event> functions
// call it with the event's description and its partition key (nil when the
// event declares none); transports implement it.
type Publisher interface {
	Publish(ctx context.Context, event *Event, key []byte, msg proto.Message) error
}

// DefaultRequestTopic returns the request topic of a service whose contract
// does not name one.
func DefaultRequestTopic(service string) string { return "purista.rpc." + service }

// DefaultEventTopic returns the topic of an event whose contract does not name one.
func DefaultEventTopic(message string) string { return "purista.event." + message }

var topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// ValidateTopic reports whether name is a legal Kafka topic name.
func ValidateTopic(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("topic name is empty: set a name of 1 to 249 characters from [a-zA-Z0-9._-]")
	case len(name) > 249:
		return fmt.Errorf("topic name %q is %d characters long: Kafka allows at most 249", name, len(name))
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is reserved by Kafka: choose another", name)
	case !topicRE.MatchString(name):
		return fmt.Errorf("topic name %q has characters Kafka does not allow: use only [a-zA-Z0-9._-]", name)
	}
	return nil
}
