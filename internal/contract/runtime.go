package contract

import (
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/purista-go/purista"
)

// Describe returns the runtime description of the service, the value the
// generated code declares for it, with the events its methods emit and
// subscribe to. Partition keys are read by reflection, so the description
// serves dynamic messages of a descriptor set as well as generated ones.
func (s *Service) Describe() *purista.Service {
	events := map[*Event]*purista.Event{} // one value per event, as generated code has
	describe := func(e *Event) *purista.Event {
		if e == nil {
			return nil
		}
		if d, ok := events[e]; ok {
			return d
		}
		events[e] = e.Describe()
		return events[e]
	}
	name := string(s.Desc.FullName())
	out := &purista.Service{
		Name:              name,
		RequestTopic:      s.Topic,
		Partitions:        s.Partitions,
		ReplicationFactor: s.ReplicationFactor,
	}
	for _, m := range s.Methods {
		pm := &purista.Method{
			Name:            string(m.Desc.Name()),
			FullMethod:      "/" + name + "/" + string(m.Desc.Name()),
			Timeout:         m.Timeout,
			Idempotent:      m.Idempotent,
			ClientStreaming: m.Desc.IsStreamingClient(),
			ServerStreaming: m.Desc.IsStreamingServer(),
			HTTP:            slices.Clone(m.HTTP),
			Public:          m.Public,
		}
		if m.Retry != nil {
			r := *m.Retry
			pm.Retry = &r
		}
		if m.Key != nil {
			pm.PartitionKeyField, pm.PartitionKey = string(m.Key.Name()), KeyFunc(m.Key)
		}
		pm.Event, pm.Subscribe = describe(m.Event), describe(m.Subscribe)
		out.Methods = append(out.Methods, pm)
	}
	return out
}

// Describe returns the runtime description of the event, the value the
// generated code declares for it; its partition key is read by reflection.
func (e *Event) Describe() *purista.Event {
	out := &purista.Event{
		Name:              string(e.Desc.FullName()),
		Topic:             e.Topic,
		Partitions:        e.Partitions,
		ReplicationFactor: e.ReplicationFactor,
	}
	if e.Key != nil {
		out.PartitionKeyField, out.PartitionKey = string(e.Key.Name()), KeyFunc(e.Key)
	}
	return out
}

// KeyFunc returns the partition key of a message as docs/plugin.md defines
// it, read by reflection: strings as they are, bytes raw, numbers in
// decimal, bools as true/false, enums by number. A message of another type
// has no key (nil), as in generated code.
func KeyFunc(fd protoreflect.FieldDescriptor) func(proto.Message) []byte {
	return func(msg proto.Message) []byte {
		m := msg.ProtoReflect()
		if m.Descriptor().FullName() != fd.ContainingMessage().FullName() {
			return nil
		}
		v := m.Get(m.Descriptor().Fields().ByNumber(fd.Number()))
		switch fd.Kind() {
		case protoreflect.StringKind:
			return []byte(v.String())
		case protoreflect.BytesKind:
			return slices.Clone(v.Bytes())
		case protoreflect.BoolKind:
			return strconv.AppendBool(nil, v.Bool())
		case protoreflect.EnumKind:
			return strconv.AppendInt(nil, int64(v.Enum()), 10)
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
			protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			return strconv.AppendInt(nil, v.Int(), 10)
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return strconv.AppendUint(nil, v.Uint(), 10)
		}
		return nil
	}
}
