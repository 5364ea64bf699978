package contract_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/purista-go/purista"
	contractv1 "github.com/purista-go/purista/gen/purista/testing/contract/v1"
	eventsv1 "github.com/purista-go/purista/gen/purista/testing/events/v1"
	streamv1 "github.com/purista-go/purista/gen/purista/testing/stream/v1"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/contract"
)

// The plugin generates code from the model; the purista command describes
// descriptor sets with the model alone. Both must mean the same: for the
// repository's contracts — contract.proto sets every option — the model's
// description of each service and event equals the generated value, partition
// keys included (compared on messages with every field set).
func TestModelAgreesWithGeneratedCode(t *testing.T) {
	files := []protoreflect.FileDescriptor{
		testingv1.File_purista_testing_v1_echo_proto,
		eventsv1.File_purista_testing_events_v1_events_proto,
		streamv1.File_purista_testing_stream_v1_stream_proto,
		contractv1.File_purista_testing_contract_v1_contract_proto,
	}
	model, err := contract.Build(files, contract.Options{})
	if err != nil {
		t.Fatal(err)
	}
	generated := map[string]*purista.Service{}
	for _, s := range []*purista.Service{
		testingv1.EchoService_PuristaService,
		eventsv1.OrdersService_PuristaService, eventsv1.InventoryService_PuristaService, eventsv1.BillingService_PuristaService,
		streamv1.StreamService_PuristaService,
		contractv1.AccountsService_PuristaService, contractv1.KeysService_PuristaService,
	} {
		generated[s.Name] = s
	}
	events := map[string]*purista.Event{}
	for _, e := range []*purista.Event{eventsv1.OrderPlaced_PuristaEvent, contractv1.AccountOpened_PuristaEvent, contractv1.AccountOpened_Audit_PuristaEvent} {
		events[e.Name] = e
	}

	if got, want := len(model.Services()), len(generated); got != want {
		t.Errorf("the model has %d services, the generated code %d", got, want)
	}
	for _, s := range model.Services() {
		want, ok := generated[string(s.Desc.FullName())]
		if !ok {
			t.Errorf("the model has %s, the generated code does not", s.Desc.FullName())
			continue
		}
		for _, problem := range diffService(s.Describe(), want) {
			t.Errorf("%s: %s", want.Name, problem)
		}
	}
	if got, want := len(model.Events()), len(events); got != want {
		t.Errorf("the model has %d events, the generated code %d", got, want)
	}
	for _, e := range model.Events() {
		want, ok := events[string(e.Desc.FullName())]
		if !ok {
			t.Errorf("the model has the event %s, the generated code does not", e.Desc.FullName())
			continue
		}
		for _, problem := range diffEvent(e.Describe(), want) {
			t.Errorf("event %s: %s", want.Name, problem)
		}
	}
}

func diffService(got, want *purista.Service) []string {
	var out []string
	if got.Name != want.Name || got.RequestTopic != want.RequestTopic || got.Partitions != want.Partitions || got.ReplicationFactor != want.ReplicationFactor {
		out = append(out, fmt.Sprintf("model %s on %s (%d, %d), generated %s on %s (%d, %d)",
			got.Name, got.RequestTopic, got.Partitions, got.ReplicationFactor, want.Name, want.RequestTopic, want.Partitions, want.ReplicationFactor))
	}
	if len(got.Methods) != len(want.Methods) {
		return append(out, fmt.Sprintf("model has %d methods, generated %d", len(got.Methods), len(want.Methods)))
	}
	for i, g := range got.Methods {
		w := want.Methods[i]
		if g.Name != w.Name || g.FullMethod != w.FullMethod || g.Timeout != w.Timeout || g.Idempotent != w.Idempotent ||
			g.ClientStreaming != w.ClientStreaming || g.ServerStreaming != w.ServerStreaming || g.Public != w.Public ||
			g.PartitionKeyField != w.PartitionKeyField || fmt.Sprint(g.HTTP) != fmt.Sprint(w.HTTP) {
			out = append(out, fmt.Sprintf("method %s: model %+v, generated %+v", w.Name, *g, *w))
		}
		out = append(out, diffKey("method "+w.Name, g.PartitionKey, w.PartitionKey, w.FullMethod)...)
		for _, ev := range []struct {
			what      string
			got, want *purista.Event
		}{{"emits", g.Event, w.Event}, {"subscribes to", g.Subscribe, w.Subscribe}} {
			switch {
			case (ev.got == nil) != (ev.want == nil):
				out = append(out, fmt.Sprintf("method %s %s: model %v, generated %v", w.Name, ev.what, ev.got, ev.want))
			case ev.got != nil:
				for _, p := range diffEvent(ev.got, ev.want) {
					out = append(out, fmt.Sprintf("method %s %s: %s", w.Name, ev.what, p))
				}
			}
		}
	}
	return out
}

func diffEvent(got, want *purista.Event) []string {
	var out []string
	if got.Name != want.Name || got.Topic != want.Topic || got.Partitions != want.Partitions ||
		got.ReplicationFactor != want.ReplicationFactor || got.PartitionKeyField != want.PartitionKeyField {
		out = append(out, fmt.Sprintf("model %+v, generated %+v", *got, *want))
	}
	return append(out, diffKey("the key", got.PartitionKey, want.PartitionKey, want.Name)...)
}

// diffKey compares two partition-key functions on a message of every type
// the key could be asked for, with every field set: the request of the
// method, or the event.
func diffKey(what string, got, want func(proto.Message) []byte, of string) []string {
	if (got == nil) != (want == nil) {
		return []string{fmt.Sprintf("%s: model has a partition key %v, generated %v", what, got != nil, want != nil)}
	}
	if got == nil {
		return nil
	}
	var out []string
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		if !strings.HasPrefix(string(mt.Descriptor().FullName()), "purista.testing.") {
			return true
		}
		msg := filled(mt)
		if g, w := got(msg), want(msg); !bytes.Equal(g, w) {
			out = append(out, fmt.Sprintf("%s of %s on a %s: model %q, generated %q", what, of, mt.Descriptor().FullName(), g, w))
		}
		return true
	})
	return out
}

// filled returns a message of mt with every singular scalar field set to a
// value that is not its zero value.
func filled(mt protoreflect.MessageType) proto.Message {
	m := mt.New()
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.IsList() || f.IsMap() {
			continue
		}
		var v protoreflect.Value
		switch f.Kind() {
		case protoreflect.StringKind:
			v = protoreflect.ValueOfString("s-" + string(f.Name()))
		case protoreflect.BytesKind:
			v = protoreflect.ValueOfBytes([]byte{0, 1, 0xff})
		case protoreflect.BoolKind:
			v = protoreflect.ValueOfBool(true)
		case protoreflect.EnumKind:
			v = protoreflect.ValueOfEnum(1)
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			v = protoreflect.ValueOfInt32(-7)
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			v = protoreflect.ValueOfInt64(-1 << 40)
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			v = protoreflect.ValueOfUint32(1 << 31)
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			v = protoreflect.ValueOfUint64(1 << 63)
		default:
			continue
		}
		m.Set(f, v)
	}
	return m.Interface()
}

// Problems carry the position of the element when the descriptor has
// source information, and only the file's path when it has none.
func TestPositionWithoutSourceInfo(t *testing.T) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("bad/v1/bad.proto"),
		Package: proto.String("bad.v1"),
		Syntax:  proto.String("proto3"),
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("A")}, {Name: proto.String("B")}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	model, err := contract.Build([]protoreflect.FileDescriptor{fd}, contract.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(model.Services()); got != 2 || model.Services()[0].Topic != "purista.rpc.bad.v1.A" {
		t.Fatalf("services: %+v", model.Services())
	}
	if model.Service("bad.v1.C") != nil {
		t.Error("an unknown service is in the model")
	}
	if got := contract.Position(fd.Services().Get(0)); got != "bad/v1/bad.proto" {
		t.Errorf("Position = %q, want the file alone", got)
	}
}
