package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/examples/contracts"
	"github.com/purista-go/purista/internal/contract"
)

// typeSet finds services and message types: those compiled into this
// binary, or those of a descriptor set (buf build -o set.binpb, or protoc
// --include_imports --descriptor_set_out).
type typeSet struct {
	files *protoregistry.Files
	// dynamic is set for a descriptor set: messages are dynamicpb messages
	// and services unknown to purista are described from their options.
	dynamic *dynamicpb.Types
	source  string
}

func loadContracts(descriptorSet string) (*typeSet, error) {
	if descriptorSet == "" {
		return &typeSet{files: protoregistry.GlobalFiles, source: "the contracts compiled into purista"}, nil
	}
	data, err := os.ReadFile(descriptorSet)
	if err != nil {
		return nil, fmt.Errorf("reading the descriptor set: %w", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%s is not a binary FileDescriptorSet (%v): build one with `buf build -o set.binpb` or `protoc --include_imports --descriptor_set_out=set.binpb`", descriptorSet, err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("the descriptor set %s is incomplete (%v): build it with its imports (buf build does; protoc needs --include_imports)", descriptorSet, err)
	}
	return &typeSet{files: files, dynamic: dynamicpb.NewTypes(files), source: descriptorSet}, nil
}

// services returns the full names of the services worth listing: for the
// compiled-in contracts those of examples/contracts, otherwise every
// service of the set.
func (c *typeSet) services() []string {
	var names []string
	if c.dynamic == nil {
		for _, s := range contracts.Services() {
			names = append(names, s.Name)
		}
		return names
	}
	c.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			names = append(names, string(fd.Services().Get(i).FullName()))
		}
		return true
	})
	sort.Strings(names)
	return names
}

// method resolves "pkg.Service/Method" ("/pkg.Service/Method" and
// "pkg.Service.Method" too).
func (c *typeSet) method(name string) (protoreflect.MethodDescriptor, error) {
	s := strings.TrimPrefix(name, "/")
	var svc, m string
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		svc, m = s[:i], s[i+1:]
	} else if i := strings.LastIndexByte(s, '.'); i >= 0 {
		svc, m = s[:i], s[i+1:]
	}
	if svc == "" || m == "" {
		return nil, usageError{fmt.Errorf("%q is no method name: write package.Service/Method, e.g. users.v1.UsersService/GetUser", name)}
	}
	d, err := c.files.FindDescriptorByName(protoreflect.FullName(svc))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok {
		return nil, usageError{fmt.Errorf("unknown service %s in %s; the services are: %s (purista call --list shows every method)",
			svc, c.source, strings.Join(c.services(), ", "))}
	}
	md := sd.Methods().ByName(protoreflect.Name(m))
	if md == nil {
		var ms []string
		for i := 0; i < sd.Methods().Len(); i++ {
			ms = append(ms, string(sd.Methods().Get(i).Name()))
		}
		hint := ""
		for _, cand := range ms {
			if strings.EqualFold(cand, m) {
				hint = fmt.Sprintf(" (did you mean %s/%s?)", svc, cand)
			}
		}
		return nil, usageError{fmt.Errorf("unknown method %s of %s%s; its methods are: %s", m, svc, hint, strings.Join(ms, ", "))}
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, usageError{fmt.Errorf("%s/%s is a streaming method: purista call makes unary calls", svc, m)}
	}
	return md, nil
}

// newMessage returns an empty message of the type: the generated Go type
// for compiled-in contracts (the transport reads partition keys through it),
// a dynamic message for a descriptor set.
func (c *typeSet) newMessage(md protoreflect.MessageDescriptor) (proto.Message, error) {
	if c.dynamic == nil {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
		if err != nil {
			return nil, fmt.Errorf("message type %s is not compiled in: %w", md.FullName(), err)
		}
		return mt.New().Interface(), nil
	}
	return dynamicpb.NewMessage(md), nil
}

// resolver resolves Any and extension types: the set's first, then the
// compiled-in ones (google.rpc error details among them).
func (c *typeSet) resolver() interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
} {
	if c.dynamic == nil {
		return protoregistry.GlobalTypes
	}
	return chainResolver{c.dynamic, protoregistry.GlobalTypes}
}

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

// contract returns purista's description of a service: the generated one
// for the compiled-in contracts, else the set's, from describe.
func (c *typeSet) contract(sd protoreflect.ServiceDescriptor) (*purista.Service, error) {
	if c.dynamic != nil {
		return c.describe(sd)
	}
	for _, s := range contracts.Services() {
		if s.Name == string(sd.FullName()) {
			return s, nil
		}
	}
	return nil, usageError{fmt.Errorf("%s is compiled into purista without its purista contract; call it with --descriptor-set", sd.FullName())}
}

// describe returns purista's description of a service of the set, read
// from its (purista.v1.service) and (purista.v1.method) options by the same
// model the plugin generates code from, so that calls go to the right topic
// with the right key and timeout, and a contract the plugin would refuse is
// refused here too.
func (c *typeSet) describe(sd protoreflect.ServiceDescriptor) (*purista.Service, error) {
	var files []protoreflect.FileDescriptor
	c.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		files = append(files, fd)
		return true
	})
	path := sd.ParentFile().Path()
	model, err := contract.Build(files, contract.Options{
		Include: func(fd protoreflect.FileDescriptor) bool { return fd.Path() == path },
	})
	if err != nil {
		return nil, fmt.Errorf("%s in %s breaks purista's contract rules; fix the contract and rebuild the set:\n%w", path, c.source, err)
	}
	s := model.Service(sd.FullName())
	if s == nil {
		return nil, fmt.Errorf("service %s is not declared in %s of %s", sd.FullName(), path, c.source)
	}
	return s.Describe(), nil
}
