// Package contract is the one reading of purista's contract options: it
// turns protobuf descriptors into services (request topics, timeouts,
// idempotency, partition keys, HTTP routes, events emitted and subscribed
// to) and events (topics, partition keys), and checks every rule those
// options must follow.
//
// protoc-gen-purista generates code from this model, and the purista
// command describes the services of a descriptor set with it, so a rule is
// written once and a contract means the same to both.
package contract

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/purista-go/purista"
	puristav1 "github.com/purista-go/purista/gen/purista/v1"
)

// Model is what a set of files declares.
type Model struct {
	// Files are the modelled files in the order they were given.
	Files []*File
}

// File is what one .proto file declares.
type File struct {
	Desc     protoreflect.FileDescriptor
	Services []*Service
	Events   []*Event
}

// Service is a protobuf service with its purista options applied.
type Service struct {
	Desc protoreflect.ServiceDescriptor
	// Topic is the request topic: the option's, else the default name.
	Topic string
	// Partitions and ReplicationFactor size the request topic; 0 means the
	// provisioning default.
	Partitions        int32
	ReplicationFactor int16
	// Methods in declaration order.
	Methods []*Method
}

// Method is one RPC of a Service with its purista options applied.
type Method struct {
	Desc       protoreflect.MethodDescriptor
	Timeout    time.Duration // 0: the transport's default
	Idempotent bool
	Public     bool
	// Retry is the retry policy of keyed calls with its defaults filled
	// in, or nil when the contract sets none.
	Retry *purista.RetryPolicy
	// Key is the request field that keys the request record, or nil.
	Key protoreflect.FieldDescriptor
	// HTTP lists the google.api.http bindings, primary first.
	HTTP []purista.HTTPRule
	// Event is the event the response is published as, or nil.
	Event *Event
	// Subscribe is the event the method is called with, or nil. Both may be
	// declared in a file that is not modelled, only imported.
	Subscribe *Event
}

// Event is a message marked as an event, with its options applied.
type Event struct {
	Desc              protoreflect.MessageDescriptor
	Topic             string
	Partitions        int32
	ReplicationFactor int16
	// Key is the event field that keys the event record, or nil.
	Key protoreflect.FieldDescriptor
}

// HasHTTP reports whether any method of the service has an HTTP route.
func (s *Service) HasHTTP() bool {
	for _, m := range s.Methods {
		if len(m.HTTP) > 0 {
			return true
		}
	}
	return false
}

// Services returns the services of every modelled file.
func (m *Model) Services() []*Service {
	var out []*Service
	for _, f := range m.Files {
		out = append(out, f.Services...)
	}
	return out
}

// Events returns the events of every modelled file.
func (m *Model) Events() []*Event {
	var out []*Event
	for _, f := range m.Files {
		out = append(out, f.Events...)
	}
	return out
}

// Service returns the modelled service of a full name, or nil.
func (m *Model) Service(name protoreflect.FullName) *Service {
	for _, s := range m.Services() {
		if s.Desc.FullName() == name {
			return s
		}
	}
	return nil
}

// Options adjust Build.
type Options struct {
	// Include selects the files to model; nil models every file. The
	// others only resolve the event messages that options name.
	Include func(protoreflect.FileDescriptor) bool
	// PublishFunc names the generated function that publishes an event
	// message, for the hint of an emit_event whose method returns another
	// message. Nil gives a hint without the name.
	PublishFunc func(protoreflect.MessageDescriptor) string
}

// Error lists every rule a set of contracts breaks, each problem starting
// with the file:line:column of the element, as compilers print them.
type Error struct {
	Problems []string
}

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// Build models the files selected by opts among files, which hold the
// selected files and their imports, and checks the rules of the options.
// HTTP routes are checked for conflicts across every modelled file. The
// error, an *Error, lists every problem found.
func Build(files []protoreflect.FileDescriptor, opts Options) (*Model, error) {
	b := &builder{opts: opts, messages: map[protoreflect.FullName]protoreflect.MessageDescriptor{}, events: map[protoreflect.FullName]*Event{}}
	for _, f := range files {
		b.indexMessages(f.Messages())
	}
	model := &Model{}
	for _, f := range files {
		if opts.Include != nil && !opts.Include(f) {
			continue
		}
		fm := &File{Desc: f}
		for i := 0; i < f.Services().Len(); i++ {
			fm.Services = append(fm.Services, b.service(f.Services().Get(i)))
		}
		fm.Events = b.eventsOf(f.Messages(), nil)
		model.Files = append(model.Files, fm)
	}
	b.checkRoutes(model)
	if len(b.errs) > 0 {
		return nil, &Error{Problems: b.errs}
	}
	return model, nil
}

// builder collects every contract error on the way, so that one run
// reports all of them.
type builder struct {
	opts     Options
	messages map[protoreflect.FullName]protoreflect.MessageDescriptor
	events   map[protoreflect.FullName]*Event // built once, however often named
	errs     []string
}

func (b *builder) indexMessages(msgs protoreflect.MessageDescriptors) {
	for i := 0; i < msgs.Len(); i++ {
		m := msgs.Get(i)
		b.messages[m.FullName()] = m
		b.indexMessages(m.Messages())
	}
}

// errorf records a contract error about d. Messages start with the file and
// the position of the element, so editors link them.
func (b *builder) errorf(d protoreflect.Descriptor, format string, args ...any) {
	b.errs = append(b.errs, Position(d)+": "+fmt.Sprintf(format, args...))
}

// Position returns "file:line:column" of d, or only the file when its
// descriptor carries no source information.
func Position(d protoreflect.Descriptor) string {
	file := d.ParentFile()
	loc := file.SourceLocations().ByDescriptor(d)
	if loc.Path == nil {
		return file.Path()
	}
	return fmt.Sprintf("%s:%d:%d", file.Path(), loc.StartLine+1, loc.StartColumn+1)
}

func (b *builder) service(s protoreflect.ServiceDescriptor) *Service {
	sm := &Service{Desc: s, Topic: purista.DefaultRequestTopic(string(s.FullName()))}
	opts, _ := proto.GetExtension(s.Options(), puristav1.E_Service).(*puristav1.ServiceOptions)
	if opts.GetTopic() != "" {
		sm.Topic = opts.GetTopic()
	}
	if err := purista.ValidateTopic(sm.Topic); err != nil {
		b.errorf(s, "service %s: request topic: %v", s.FullName(), err)
	}
	sm.Partitions, sm.ReplicationFactor = b.topicSize(s, "service "+string(s.FullName()), "(purista.v1.service)",
		opts.GetPartitions(), opts.GetReplicationFactor())
	for i := 0; i < s.Methods().Len(); i++ {
		sm.Methods = append(sm.Methods, b.method(s.Methods().Get(i)))
	}
	return sm
}

// topicSize checks the partitions and replication factor of a topic option.
func (b *builder) topicSize(d protoreflect.Descriptor, element, option string, partitions, replication int32) (int32, int16) {
	if partitions < 0 {
		b.errorf(d, "%s: %s.partitions is %d; set a positive number, or 0 for the default", element, option, partitions)
	}
	if replication < 0 || replication > math.MaxInt16 {
		b.errorf(d, "%s: %s.replication_factor is %d; set 1 to %d, or 0 for the broker's default", element, option, replication, math.MaxInt16)
		replication = 0
	}
	return partitions, int16(replication)
}

// maxRetryAttempts bounds (purista.v1.method).retry.max_attempts: more
// tries than this is a mistake, not a policy.
const maxRetryAttempts = 100

// retryPolicy checks a method's retry option and fills in the defaults of
// what it leaves unset.
func (b *builder) retryPolicy(m protoreflect.MethodDescriptor, name string, r *puristav1.RetryPolicy) *purista.RetryPolicy {
	p := purista.DefaultRetryPolicy()
	if n := r.GetMaxAttempts(); n > maxRetryAttempts {
		b.errorf(m, "%s: (purista.v1.method).retry.max_attempts is %d; set 1 to %d (1 turns retries off), or 0 for the default %d", name, n, maxRetryAttempts, p.MaxAttempts)
	} else if n > 0 {
		p.MaxAttempts = int(n)
	}
	first, firstSet := b.positiveDuration(m, name, "retry.initial_backoff", "the default", r.GetInitialBackoff())
	if firstSet {
		p.InitialBackoff = first
	}
	if last, ok := b.positiveDuration(m, name, "retry.max_backoff", "the default", r.GetMaxBackoff()); ok {
		if last < p.InitialBackoff {
			b.errorf(m, "%s: (purista.v1.method).retry.max_backoff %v is shorter than initial_backoff %v; make it at least as long", name, last, p.InitialBackoff)
		}
		p.MaxBackoff = last
	} else {
		p.MaxBackoff = max(p.MaxBackoff, p.InitialBackoff)
	}
	return &p
}

// positiveDuration checks the duration option (purista.v1.method).<field>
// of m: unset, or valid and positive; unset means def.
func (b *builder) positiveDuration(m protoreflect.MethodDescriptor, name, field, def string, d *durationpb.Duration) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	if err := d.CheckValid(); err != nil {
		b.errorf(m, "%s: (purista.v1.method).%s is invalid (%v); set seconds and nanos of the same sign", name, field, err)
		return 0, false
	}
	if d.AsDuration() <= 0 {
		b.errorf(m, "%s: (purista.v1.method).%s is %v; set a positive duration, or leave it unset for %s", name, field, d.AsDuration(), def)
		return 0, false
	}
	return d.AsDuration(), true
}

func (b *builder) method(m protoreflect.MethodDescriptor) *Method {
	name := "method " + string(m.FullName())
	mm := &Method{Desc: m}
	opts, _ := proto.GetExtension(m.Options(), puristav1.E_Method).(*puristav1.MethodOptions)
	mm.Idempotent = opts.GetIdempotent()
	mm.Public = opts.GetPublic()
	if t, ok := b.positiveDuration(m, name, "timeout", "the transport's default", opts.GetTimeout()); ok {
		mm.Timeout = t
	}
	if r := opts.GetRetry(); r != nil {
		mm.Retry = b.retryPolicy(m, name, r)
	}
	if k := opts.GetPartitionKey(); k != "" {
		mm.Key = b.keyField(m, name, "(purista.v1.method).partition_key", k, m.Input())
	}

	if rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule); rule != nil {
		mm.HTTP = b.httpRules(m, name, rule)
	}
	if len(mm.HTTP) > 0 && m.IsStreamingClient() {
		kind := "client-streaming"
		if m.IsStreamingServer() {
			kind = "bidirectional-streaming"
		}
		b.errorf(m, "%s: a %s method cannot be bound to HTTP; remove its google.api.http option or make it unary or server-streaming", name, kind)
	}

	if e := opts.GetEmitEvent(); e != "" {
		if ev := b.eventRef(m, name, "emit_event", e); ev != nil {
			mm.Event = b.event(ev, nil)
			if m.Output().FullName() != ev.FullName() {
				how := "its generated Publish function"
				if b.opts.PublishFunc != nil {
					how = b.opts.PublishFunc(ev)
				}
				b.errorf(m, "%s: (purista.v1.method).emit_event names %s but the method returns %s; the response is what is published, so return %s or emit the event from the handler with %s",
					name, ev.FullName(), m.Output().FullName(), ev.FullName(), how)
			}
		}
	}
	if e := opts.GetSubscribe(); e != "" {
		if ev := b.eventRef(m, name, "subscribe", e); ev != nil {
			mm.Subscribe = b.event(ev, nil)
			if m.Input().FullName() != ev.FullName() {
				b.errorf(m, "%s: (purista.v1.method).subscribe names %s but the method takes %s; a subscriber is called with the event, so take %s",
					name, ev.FullName(), m.Input().FullName(), ev.FullName())
			}
		}
	}
	if (mm.Event != nil || mm.Subscribe != nil) && (m.IsStreamingClient() || m.IsStreamingServer()) {
		b.errorf(m, "%s: emit_event and subscribe need a unary method; make the method unary or drop the option", name)
	}
	return mm
}

// eventRef resolves the event message an emit_event or subscribe option
// names: a full name, or a name relative to the method's package.
func (b *builder) eventRef(m protoreflect.MethodDescriptor, element, option, ref string) protoreflect.MessageDescriptor {
	name := protoreflect.FullName(strings.TrimPrefix(ref, "."))
	msg, ok := b.messages[name]
	if !ok {
		msg, ok = b.messages[m.ParentFile().Package().Append(protoreflect.Name(name))]
	}
	if !ok || !name.IsValid() {
		b.errorf(m, "%s: (purista.v1.method).%s names %q, which is no message of this file or its imports; name an event message by its full name (package.Message) and import its file",
			element, option, ref)
		return nil
	}
	if opts, _ := proto.GetExtension(msg.Options(), puristav1.E_Message).(*puristav1.MessageOptions); !opts.GetEvent() {
		b.errorf(m, "%s: (purista.v1.method).%s names %s, which is not an event; mark it with option (purista.v1.message) = {event: true}",
			element, option, msg.FullName())
		return nil
	}
	return msg
}

// keyField resolves a partition-key option against the fields of msg.
func (b *builder) keyField(d protoreflect.Descriptor, element, option, name string, msg protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	var names []string
	fields := msg.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if isKeyKind(f) {
			names = append(names, string(f.Name()))
		}
		if string(f.Name()) != name {
			continue
		}
		if !isKeyKind(f) {
			b.errorf(d, "%s: %s %q is %s of %s, which cannot key a record; name a singular string, bytes, integer, bool or enum field",
				element, option, name, describeField(f), msg.FullName())
			return nil
		}
		return f
	}
	fix := "add the field or name one of its scalar fields"
	if len(names) > 0 {
		fix = "name one of its scalar fields: " + strings.Join(names, ", ")
	}
	b.errorf(d, "%s: %s %q is not a field of %s; %s", element, option, name, msg.FullName(), fix)
	return nil
}

// isKeyKind reports whether a field's value can key a Kafka record: a
// singular scalar other than a floating-point number (whose text forms of
// one value differ, e.g. 0 and -0).
func isKeyKind(f protoreflect.FieldDescriptor) bool {
	if f.IsList() || f.IsMap() {
		return false
	}
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind, protoreflect.FloatKind, protoreflect.DoubleKind:
		return false
	}
	return true
}

func describeField(f protoreflect.FieldDescriptor) string {
	switch {
	case f.IsMap():
		return "a map field"
	case f.IsList():
		return "a repeated field"
	case f.Kind() == protoreflect.MessageKind || f.Kind() == protoreflect.GroupKind:
		return "a message field"
	default:
		return "a " + f.Kind().String() + " field"
	}
}

// httpRules flattens a google.api.http rule and its additional bindings.
func (b *builder) httpRules(m protoreflect.MethodDescriptor, element string, rule *annotations.HttpRule) []purista.HTTPRule {
	var out []purista.HTTPRule
	add := func(r *annotations.HttpRule) {
		hr := purista.HTTPRule{Body: r.GetBody(), ResponseBody: r.GetResponseBody()}
		switch p := r.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			hr.Method, hr.Pattern = "GET", p.Get
		case *annotations.HttpRule_Put:
			hr.Method, hr.Pattern = "PUT", p.Put
		case *annotations.HttpRule_Post:
			hr.Method, hr.Pattern = "POST", p.Post
		case *annotations.HttpRule_Delete:
			hr.Method, hr.Pattern = "DELETE", p.Delete
		case *annotations.HttpRule_Patch:
			hr.Method, hr.Pattern = "PATCH", p.Patch
		case *annotations.HttpRule_Custom:
			hr.Method, hr.Pattern = p.Custom.GetKind(), p.Custom.GetPath()
		}
		if hr.Method == "" || hr.Pattern == "" {
			b.errorf(m, "%s: a google.api.http binding has no verb and path; set one of get, put, post, delete, patch or custom {kind, path}", element)
			return
		}
		out = append(out, hr)
	}
	add(rule)
	for _, r := range rule.GetAdditionalBindings() {
		if len(r.GetAdditionalBindings()) > 0 {
			b.errorf(m, "%s: an additional binding has additional_bindings of its own; list every binding in the top-level rule's additional_bindings", element)
		}
		add(r)
	}
	return out
}

// eventsOf appends the events among msgs and their nested messages to out,
// and checks that messages which are not events carry no event settings.
func (b *builder) eventsOf(msgs protoreflect.MessageDescriptors, out []*Event) []*Event {
	for i := 0; i < msgs.Len(); i++ {
		m := msgs.Get(i)
		if m.IsMapEntry() {
			continue
		}
		opts, _ := proto.GetExtension(m.Options(), puristav1.E_Message).(*puristav1.MessageOptions)
		switch {
		case opts.GetEvent():
			out = append(out, b.event(m, opts))
		case opts != nil && proto.Size(opts) > 0:
			b.errorf(m, "message %s: (purista.v1.message) sets %s but not event: true, so the message is no event; set event: true or remove the option",
				m.FullName(), setFields(opts))
		}
		out = b.eventsOf(m.Messages(), out)
	}
	return out
}

// event returns the model of an event message, built and checked the first
// time it is asked for; opts are its options when the caller has them.
func (b *builder) event(m protoreflect.MessageDescriptor, opts *puristav1.MessageOptions) *Event {
	if em, ok := b.events[m.FullName()]; ok {
		return em
	}
	if opts == nil {
		opts, _ = proto.GetExtension(m.Options(), puristav1.E_Message).(*puristav1.MessageOptions)
	}
	name := "message " + string(m.FullName())
	em := &Event{Desc: m, Topic: purista.DefaultEventTopic(string(m.FullName()))}
	b.events[m.FullName()] = em
	if opts.GetTopic() != "" {
		em.Topic = opts.GetTopic()
	}
	if err := purista.ValidateTopic(em.Topic); err != nil {
		b.errorf(m, "%s: event topic: %v", name, err)
	}
	em.Partitions, em.ReplicationFactor = b.topicSize(m, name, "(purista.v1.message)", opts.GetPartitions(), opts.GetReplicationFactor())
	if k := opts.GetPartitionKey(); k != "" {
		em.Key = b.keyField(m, name, "(purista.v1.message).partition_key", k, m)
	}
	return em
}

// setFields lists the fields set in an options message.
func setFields(m proto.Message) string {
	var names []string
	m.ProtoReflect().Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		names = append(names, string(f.Name()))
		return true
	})
	sort.Strings(names)
	return strings.Join(names, ", ")
}
