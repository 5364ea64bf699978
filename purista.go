// Package purista holds the runtime contract shared by code that
// protoc-gen-purista generates, the transports and the gateway: the
// description of services, methods, HTTP bindings and events taken from the
// .proto contracts, and a process-wide registry of them.
//
// Generated code registers every service and event of a contract in an init
// function, so a binary knows its routes and topics at compile time; nothing
// is discovered at run time.
package purista

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Version is the version of this runtime.
const Version = "0.1.0"

// IsAtLeastVersion0_1_0 is referenced by generated code. Generated code that
// needs a newer runtime references a newer constant and fails to compile
// against this one, naming the version it needs.
const IsAtLeastVersion0_1_0 = true

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
	// RegisterHTTP registers the service's google.api.http routes on a
	// grpc-gateway mux, calling the service through conn. It is nil when the
	// service has no HTTP bindings or protoc-gen-grpc-gateway did not run.
	RegisterHTTP func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error
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
	// Event is the full name of the event message the successful response is
	// also published as; empty when none.
	Event string
	// Subscribe is the full name of the event message the method is invoked
	// with, once per event, for every subscribing service; empty when the
	// method subscribes to none.
	Subscribe string
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

var registry = struct {
	sync.RWMutex
	services map[string]*Service
	methods  map[string]*Method
	owners   map[string]*Service
	events   map[string]*Event
	errs     []error
}{
	services: map[string]*Service{},
	methods:  map[string]*Method{},
	owners:   map[string]*Service{},
	events:   map[string]*Event{},
}

// RegisterService records s in the process-wide registry. Generated code
// calls it from init. Registering a second, different description under the
// same name keeps the first and returns an error, which is also kept for
// RegistrationErrors.
func RegisterService(s *Service) error {
	registry.Lock()
	defer registry.Unlock()
	if old, ok := registry.services[s.Name]; ok && old != s {
		err := fmt.Errorf("purista: service %s registered twice: two generated packages describe the same service; import only one", s.Name)
		registry.errs = append(registry.errs, err)
		return err
	}
	registry.services[s.Name] = s
	for _, m := range s.Methods {
		registry.methods[m.FullMethod] = m
		registry.owners[m.FullMethod] = s
	}
	return nil
}

// RegisterEvent records e in the process-wide registry. Generated code calls
// it from init. Like RegisterService it keeps the first description of a
// name and returns, and keeps, an error for a second one.
func RegisterEvent(e *Event) error {
	registry.Lock()
	defer registry.Unlock()
	if old, ok := registry.events[e.Name]; ok && old != e {
		err := fmt.Errorf("purista: event %s registered twice: two generated packages describe the same message; import only one", e.Name)
		registry.errs = append(registry.errs, err)
		return err
	}
	registry.events[e.Name] = e
	return nil
}

// RegistrationErrors returns the errors RegisterService and RegisterEvent
// have returned so far, joined, or nil. Generated init functions cannot
// return errors and must not panic, so they leave them here: transports and
// the gateway check it when they start, and so can a main function.
func RegistrationErrors() error {
	registry.RLock()
	defer registry.RUnlock()
	return errors.Join(registry.errs...)
}

// LookupService returns the registered description of a service.
func LookupService(name string) (*Service, bool) {
	registry.RLock()
	defer registry.RUnlock()
	s, ok := registry.services[name]
	return s, ok
}

// LookupMethod returns the registered descriptions of a full method and its
// service.
func LookupMethod(fullMethod string) (*Service, *Method, bool) {
	registry.RLock()
	defer registry.RUnlock()
	m, ok := registry.methods[fullMethod]
	return registry.owners[fullMethod], m, ok
}

// LookupEvent returns the registered description of an event message.
func LookupEvent(name string) (*Event, bool) {
	registry.RLock()
	defer registry.RUnlock()
	e, ok := registry.events[name]
	return e, ok
}

// Services returns every registered service, sorted by name.
func Services() []*Service {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]*Service, 0, len(registry.services))
	for _, s := range registry.services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Events returns every registered event, sorted by name.
func Events() []*Event {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]*Event, 0, len(registry.events))
	for _, e := range registry.events {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// RequestTopic returns the request topic of a service: the registered one,
// or the default name when the service is not registered.
func RequestTopic(service string) string {
	if s, ok := LookupService(service); ok && s.RequestTopic != "" {
		return s.RequestTopic
	}
	return DefaultRequestTopic(service)
}
