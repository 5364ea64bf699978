package main

import (
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/purista-go/purista"
	puristav1 "github.com/purista-go/purista/gen/purista/v1"
)

type chainResolver struct {
	first  *dynamicpb.Types
	second *protoregistry.Types
}

func (r chainResolver) FindMessageByName(n protoreflect.FullName) (protoreflect.MessageType, error) {
	if mt, err := r.second.FindMessageByName(n); err == nil {
		return mt, nil
	}
	return r.first.FindMessageByName(n)
}

func (r chainResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if mt, err := r.second.FindMessageByURL(url); err == nil {
		return mt, nil
	}
	return r.first.FindMessageByURL(url)
}

func (r chainResolver) FindExtensionByName(n protoreflect.FullName) (protoreflect.ExtensionType, error) {
	if xt, err := r.second.FindExtensionByName(n); err == nil {
		return xt, nil
	}
	return r.first.FindExtensionByName(n)
}

func (r chainResolver) FindExtensionByNumber(m protoreflect.FullName, f protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	if xt, err := r.second.FindExtensionByNumber(m, f); err == nil {
		return xt, nil
	}
	return r.first.FindExtensionByNumber(m, f)
}

// describe returns purista's description of a service, read from its
// (purista.v1.service) and (purista.v1.method) options and its
// google.api.http bindings: what protoc-gen-purista generates, so that calls
// go to the right topic with the right key and timeout, and routes and
// topics are the ones the services serve.
func describe(files *protoregistry.Files, sd protoreflect.ServiceDescriptor) *purista.Service {
	s := &purista.Service{Name: string(sd.FullName()), RequestTopic: purista.DefaultRequestTopic(string(sd.FullName()))}
	if so, _ := proto.GetExtension(sd.Options(), puristav1.E_Service).(*puristav1.ServiceOptions); so != nil {
		if so.GetTopic() != "" {
			s.RequestTopic = so.GetTopic()
		}
		s.Partitions, s.ReplicationFactor = so.GetPartitions(), int16(so.GetReplicationFactor())
	}
	for i := 0; i < sd.Methods().Len(); i++ {
		md := sd.Methods().Get(i)
		m := &purista.Method{
			Name:            string(md.Name()),
			FullMethod:      "/" + s.Name + "/" + string(md.Name()),
			ClientStreaming: md.IsStreamingClient(),
			ServerStreaming: md.IsStreamingServer(),
			HTTP:            httpRules(md),
		}
		if mo, _ := proto.GetExtension(md.Options(), puristav1.E_Method).(*puristav1.MethodOptions); mo != nil {
			m.Timeout = mo.GetTimeout().AsDuration()
			m.Idempotent = mo.GetIdempotent()
			m.Public = mo.GetPublic()
			if fd := md.Input().Fields().ByName(protoreflect.Name(mo.GetPartitionKey())); fd != nil && !fd.IsList() && !fd.IsMap() {
				m.PartitionKeyField, m.PartitionKey = string(fd.Name()), keyOf(fd)
			}
			m.Event = eventRef(files, sd.ParentFile().Package(), mo.GetEmitEvent())
			m.Subscribe = eventRef(files, sd.ParentFile().Package(), mo.GetSubscribe())
		}
		s.Methods = append(s.Methods, m)
	}
	return s
}

// eventRef resolves the event an emit_event or subscribe option names, as
// the plugin does: a full name, or a name relative to the package.
func eventRef(files *protoregistry.Files, pkg protoreflect.FullName, ref string) string {
	name := strings.TrimPrefix(ref, ".")
	if name == "" {
		return ""
	}
	if _, err := files.FindDescriptorByName(protoreflect.FullName(name)); err != nil && pkg != "" {
		return string(pkg) + "." + name
	}
	return name
}

// keyOf returns the partition key of a request as docs/plugin.md defines
// it: strings as they are, bytes raw, numbers in decimal, bools as
// true/false, enums by number.
func keyOf(fd protoreflect.FieldDescriptor) func(proto.Message) []byte {
	return func(req proto.Message) []byte {
		m := req.ProtoReflect()
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
