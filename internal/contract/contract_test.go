package contract_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/purista-go/purista"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/contract"
)

// The model of a compiled-in file describes its service as the code
// generated from the same file does.
func TestDescribeMatchesGeneratedEcho(t *testing.T) {
	fd := testingv1.File_purista_testing_v1_echo_proto
	model, err := contract.Build([]protoreflect.FileDescriptor{fd}, contract.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := model.Service("purista.testing.v1.EchoService")
	if s == nil {
		t.Fatal("EchoService is not in the model")
	}
	got, want := s.Describe(), testingv1.EchoService_PuristaService
	if got.Name != want.Name || got.RequestTopic != want.RequestTopic || got.Partitions != want.Partitions ||
		got.ReplicationFactor != want.ReplicationFactor || len(got.Methods) != len(want.Methods) {
		t.Fatalf("model %+v, generated %+v", got, want)
	}
	for i, m := range got.Methods {
		w := want.Methods[i]
		if m.Name != w.Name || m.FullMethod != w.FullMethod || m.Timeout != w.Timeout || m.Idempotent != w.Idempotent ||
			m.Public != w.Public || m.PartitionKeyField != w.PartitionKeyField || !equalRules(m.HTTP, w.HTTP) {
			t.Errorf("method %s: model %+v, generated %+v", w.Name, m, w)
		}
	}
	req := &testingv1.EchoRequest{Key: "tenant-7"}
	if g, w := string(got.Methods[0].PartitionKey(req)), string(want.Methods[0].PartitionKey(req)); g != w {
		t.Errorf("partition key: model %q, generated %q", g, w)
	}
	if k := got.Methods[0].PartitionKey(&testingv1.CountRequest{}); k != nil {
		t.Errorf("partition key of another message = %q, want nil", k)
	}
}

func equalRules(a, b []purista.HTTPRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Problems carry the position of the element when the descriptor has
// source information, and only the file's path when it has none.
func TestBuildReportsEveryProblem(t *testing.T) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    ptr("bad/v1/bad.proto"),
		Package: ptr("bad.v1"),
		Syntax:  ptr("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: ptr("Req")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: ptr("A")}, {Name: ptr("B")}},
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
	if !strings.HasPrefix(contract.Position(fd.Services().Get(0)), "bad/v1/bad.proto") {
		t.Errorf("Position = %q", contract.Position(fd.Services().Get(0)))
	}
}

func ptr(s string) *string { return &s }
