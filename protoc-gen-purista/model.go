package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/purista-go/purista"
	puristav1 "github.com/purista-go/purista/gen/purista/v1"
)

// fileModel is what one generated file declares.
type fileModel struct {
	file     *protogen.File
	services []*serviceModel
	events   []*eventModel
}

type serviceModel struct {
	svc               *protogen.Service
	topic             string
	partitions        int32
	replicationFactor int16
	methods           []*methodModel
}

// hasHTTP reports whether any method of the service has an HTTP route.
func (s *serviceModel) hasHTTP() bool {
	for _, m := range s.methods {
		if len(m.http) > 0 {
			return true
		}
	}
	return false
}

type methodModel struct {
	method     *protogen.Method
	timeout    time.Duration
	idempotent bool
	public     bool
	key        *protogen.Field // partition key field of the request, or nil
	http       []httpRule
	event      string // full name of the emitted event
	subscribe  string // full name of the event subscribed to
}

type httpRule struct {
	method, pattern, body, responseBody string
}

type eventModel struct {
	msg               *protogen.Message
	topic             string
	partitions        int32
	replicationFactor int16
	key               *protogen.Field
}

// builder turns the files of a request into models, collecting every
// contract error on the way so that one run reports all of them.
type builder struct {
	gen      *protogen.Plugin
	messages map[protoreflect.FullName]*protogen.Message
	errs     []string
}

// build returns the models of the files to generate, or an error listing
// every rule the contracts break.
func build(gen *protogen.Plugin) ([]*fileModel, error) {
	b := &builder{gen: gen, messages: map[protoreflect.FullName]*protogen.Message{}}
	for _, f := range gen.Files {
		b.indexMessages(f.Messages)
	}
	var files []*fileModel
	for _, f := range gen.Files {
		if !f.Generate {
			continue
		}
		fm := &fileModel{file: f}
		for _, s := range f.Services {
			fm.services = append(fm.services, b.service(s))
		}
		fm.events = b.events(f.Messages, nil)
		files = append(files, fm)
	}
	b.checkRoutes(files)
	if len(b.errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(b.errs, "\n"))
	}
	return files, nil
}

func (b *builder) indexMessages(msgs []*protogen.Message) {
	for _, m := range msgs {
		b.messages[m.Desc.FullName()] = m
		b.indexMessages(m.Messages)
	}
}

// errorf records a contract error about d. Messages start with the file and
// the position of the element, as compilers print them, so editors link them.
func (b *builder) errorf(d protoreflect.Descriptor, format string, args ...any) {
	b.errs = append(b.errs, position(d)+": "+fmt.Sprintf(format, args...))
}

// position returns "file:line:column" of d, or only the file when the
// request carries no source information.
func position(d protoreflect.Descriptor) string {
	file := d.ParentFile()
	loc := file.SourceLocations().ByDescriptor(d)
	if loc.Path == nil {
		return file.Path()
	}
	return fmt.Sprintf("%s:%d:%d", file.Path(), loc.StartLine+1, loc.StartColumn+1)
}

func (b *builder) service(s *protogen.Service) *serviceModel {
	sm := &serviceModel{svc: s, topic: purista.DefaultRequestTopic(string(s.Desc.FullName()))}
	opts, _ := proto.GetExtension(s.Desc.Options(), puristav1.E_Service).(*puristav1.ServiceOptions)
	if opts.GetTopic() != "" {
		sm.topic = opts.GetTopic()
	}
	if err := purista.ValidateTopic(sm.topic); err != nil {
		b.errorf(s.Desc, "service %s: request topic: %v", s.Desc.FullName(), err)
	}
	sm.partitions, sm.replicationFactor = b.topicSize(s.Desc, "service "+string(s.Desc.FullName()), "(purista.v1.service)",
		opts.GetPartitions(), opts.GetReplicationFactor())
	for _, m := range s.Methods {
		sm.methods = append(sm.methods, b.method(m))
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

func (b *builder) method(m *protogen.Method) *methodModel {
	name := "method " + string(m.Desc.FullName())
	mm := &methodModel{method: m}
	opts, _ := proto.GetExtension(m.Desc.Options(), puristav1.E_Method).(*puristav1.MethodOptions)
	mm.idempotent = opts.GetIdempotent()
	mm.public = opts.GetPublic()
	if t := opts.GetTimeout(); t != nil {
		switch {
		case t.CheckValid() != nil:
			b.errorf(m.Desc, "%s: (purista.v1.method).timeout is invalid (%v); set seconds and nanos of the same sign", name, t.CheckValid())
		case t.AsDuration() <= 0:
			b.errorf(m.Desc, "%s: (purista.v1.method).timeout is %v; set a positive duration, or leave it unset for the transport's default", name, t.AsDuration())
		default:
			mm.timeout = t.AsDuration()
		}
	}
	if k := opts.GetPartitionKey(); k != "" {
		mm.key = b.keyField(m.Desc, name, "(purista.v1.method).partition_key", k, m.Input)
	}

	rule, _ := proto.GetExtension(m.Desc.Options(), annotations.E_Http).(*annotations.HttpRule)
	if rule != nil {
		mm.http = b.httpRules(m, name, rule)
	}
	if len(mm.http) > 0 && m.Desc.IsStreamingClient() {
		kind := "client-streaming"
		if m.Desc.IsStreamingServer() {
			kind = "bidirectional-streaming"
		}
		b.errorf(m.Desc, "%s: a %s method cannot be bound to HTTP; remove its google.api.http option or make it unary or server-streaming", name, kind)
	}

	if e := opts.GetEmitEvent(); e != "" {
		if ev := b.eventRef(m, name, "emit_event", e); ev != nil {
			mm.event = string(ev.Desc.FullName())
			if m.Output != ev {
				b.errorf(m.Desc, "%s: (purista.v1.method).emit_event names %s but the method returns %s; the response is what is published, so return %s or emit the event from the handler with Publish%s",
					name, ev.Desc.FullName(), m.Output.Desc.FullName(), ev.Desc.FullName(), ev.GoIdent.GoName)
			}
		}
	}
	if e := opts.GetSubscribe(); e != "" {
		if ev := b.eventRef(m, name, "subscribe", e); ev != nil {
			mm.subscribe = string(ev.Desc.FullName())
			if m.Input != ev {
				b.errorf(m.Desc, "%s: (purista.v1.method).subscribe names %s but the method takes %s; a subscriber is called with the event, so take %s",
					name, ev.Desc.FullName(), m.Input.Desc.FullName(), ev.Desc.FullName())
			}
		}
	}
	if (mm.event != "" || mm.subscribe != "") && (m.Desc.IsStreamingClient() || m.Desc.IsStreamingServer()) {
		b.errorf(m.Desc, "%s: emit_event and subscribe need a unary method; make the method unary or drop the option", name)
	}
	return mm
}

// eventRef resolves the event message an emit_event or subscribe option
// names: a full name, or a name relative to the method's package.
func (b *builder) eventRef(m *protogen.Method, element, option, ref string) *protogen.Message {
	name := protoreflect.FullName(strings.TrimPrefix(ref, "."))
	msg, ok := b.messages[name]
	if !ok {
		msg, ok = b.messages[m.Desc.ParentFile().Package().Append(protoreflect.Name(name))]
	}
	if !ok || !name.IsValid() {
		b.errorf(m.Desc, "%s: (purista.v1.method).%s names %q, which is no message of this file or its imports; name an event message by its full name (package.Message) and import its file",
			element, option, ref)
		return nil
	}
	if !proto.GetExtension(msg.Desc.Options(), puristav1.E_Message).(*puristav1.MessageOptions).GetEvent() {
		b.errorf(m.Desc, "%s: (purista.v1.method).%s names %s, which is not an event; mark it with option (purista.v1.message) = {event: true}",
			element, option, msg.Desc.FullName())
		return nil
	}
	return msg
}

// keyField resolves a partition-key option against the fields of msg.
func (b *builder) keyField(d protoreflect.Descriptor, element, option, name string, msg *protogen.Message) *protogen.Field {
	var names []string
	for _, f := range msg.Fields {
		if isKeyKind(f.Desc) {
			names = append(names, string(f.Desc.Name()))
		}
		if string(f.Desc.Name()) != name {
			continue
		}
		if !isKeyKind(f.Desc) {
			b.errorf(d, "%s: %s %q is %s of %s, which cannot key a record; name a singular string, bytes, integer, bool or enum field",
				element, option, name, describeField(f.Desc), msg.Desc.FullName())
			return nil
		}
		return f
	}
	fix := "add the field or name one of its scalar fields"
	if len(names) > 0 {
		fix = "name one of its scalar fields: " + strings.Join(names, ", ")
	}
	b.errorf(d, "%s: %s %q is not a field of %s; %s", element, option, name, msg.Desc.FullName(), fix)
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
func (b *builder) httpRules(m *protogen.Method, element string, rule *annotations.HttpRule) []httpRule {
	var out []httpRule
	add := func(r *annotations.HttpRule) {
		hr := httpRule{body: r.GetBody(), responseBody: r.GetResponseBody()}
		switch p := r.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			hr.method, hr.pattern = "GET", p.Get
		case *annotations.HttpRule_Put:
			hr.method, hr.pattern = "PUT", p.Put
		case *annotations.HttpRule_Post:
			hr.method, hr.pattern = "POST", p.Post
		case *annotations.HttpRule_Delete:
			hr.method, hr.pattern = "DELETE", p.Delete
		case *annotations.HttpRule_Patch:
			hr.method, hr.pattern = "PATCH", p.Patch
		case *annotations.HttpRule_Custom:
			hr.method, hr.pattern = p.Custom.GetKind(), p.Custom.GetPath()
		}
		if hr.method == "" || hr.pattern == "" {
			b.errorf(m.Desc, "%s: a google.api.http binding has no verb and path; set one of get, put, post, delete, patch or custom {kind, path}", element)
			return
		}
		out = append(out, hr)
	}
	add(rule)
	for _, r := range rule.GetAdditionalBindings() {
		if len(r.GetAdditionalBindings()) > 0 {
			b.errorf(m.Desc, "%s: an additional binding has additional_bindings of its own; list every binding in the top-level rule's additional_bindings", element)
		}
		add(r)
	}
	return out
}

// events returns the models of the event messages among msgs and their
// nested messages, and checks that messages which are not events carry no
// event settings.
func (b *builder) events(msgs []*protogen.Message, out []*eventModel) []*eventModel {
	for _, m := range msgs {
		if m.Desc.IsMapEntry() {
			continue
		}
		opts, _ := proto.GetExtension(m.Desc.Options(), puristav1.E_Message).(*puristav1.MessageOptions)
		name := "message " + string(m.Desc.FullName())
		switch {
		case opts.GetEvent():
			em := &eventModel{msg: m, topic: purista.DefaultEventTopic(string(m.Desc.FullName()))}
			if opts.GetTopic() != "" {
				em.topic = opts.GetTopic()
			}
			if err := purista.ValidateTopic(em.topic); err != nil {
				b.errorf(m.Desc, "%s: event topic: %v", name, err)
			}
			em.partitions, em.replicationFactor = b.topicSize(m.Desc, name, "(purista.v1.message)", opts.GetPartitions(), opts.GetReplicationFactor())
			if k := opts.GetPartitionKey(); k != "" {
				em.key = b.keyField(m.Desc, name, "(purista.v1.message).partition_key", k, m)
			}
			out = append(out, em)
		case opts != nil && proto.Size(opts) > 0:
			b.errorf(m.Desc, "%s: (purista.v1.message) sets %s but not event: true, so the message is no event; set event: true or remove the option",
				name, setFields(opts))
		}
		out = b.events(m.Messages, out)
	}
	return out
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

// checkRoutes reports HTTP routes that two bindings share: the same verb
// and the same path template once variable names are ignored, so
// /v1/users/{id} and /v1/users/{user_id} collide. It looks at every file of
// the request, which with buf's strategy: all is everything generated
// together.
func (b *builder) checkRoutes(files []*fileModel) {
	type owner struct {
		method *protogen.Method
		rule   httpRule
	}
	seen := map[string]owner{}
	for _, f := range files {
		for _, s := range f.services {
			for _, m := range s.methods {
				for _, r := range m.http {
					tmpl, err := normalizeTemplate(r.pattern)
					if err != nil {
						b.errorf(m.method.Desc, "method %s: google.api.http path %q: %v", m.method.Desc.FullName(), r.pattern, err)
						continue
					}
					key := r.method + " " + tmpl
					if first, ok := seen[key]; ok {
						b.errorf(m.method.Desc, "method %s: HTTP route %s %s is already bound by method %s (%s %s, in %s); change the path or the verb of one of them",
							m.method.Desc.FullName(), r.method, r.pattern, first.method.Desc.FullName(),
							first.rule.method, first.rule.pattern, first.method.Desc.ParentFile().Path())
						continue
					}
					seen[key] = owner{m.method, r}
				}
			}
		}
	}
}

// normalizeTemplate rewrites a google.api.http path template so that two
// templates matching the same requests are equal: a variable becomes its
// segment pattern ("{id}" is "*", "{name=users/*}" is "users/*").
func normalizeTemplate(t string) (string, error) {
	if !strings.HasPrefix(t, "/") {
		return "", fmt.Errorf("a path template starts with \"/\"")
	}
	var sb strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch c {
		case '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("a variable's \"{\" is not closed; close it with \"}\"")
			}
			v := t[i+1 : i+end]
			if strings.ContainsRune(v, '{') {
				return "", fmt.Errorf("variables cannot nest; remove the inner \"{\"")
			}
			name, pattern, ok := strings.Cut(v, "=")
			if name == "" {
				return "", fmt.Errorf("a variable has no field name; write {field} or {field=pattern}")
			}
			if !ok {
				pattern = "*"
			}
			sb.WriteString(pattern)
			i += end
		case '}':
			return "", fmt.Errorf("a \"}\" closes no variable; remove it or open the variable with \"{\"")
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String(), nil
}
