package contracts

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Files are the .proto files of the example contracts.
var Files = []string{"users/v1/users.proto", "orders/v1/orders.proto", "notifications/v1/notifications.proto"}

// Image returns the named files (all of Files when none is named) and
// their imports as a FileDescriptorSet — what `buf build -o FILE` makes —
// from the descriptors compiled into the generated Go code, imports first
// as protoc --include_imports orders them. The purista CLI reads it with
// --image.
func Image(paths ...string) ([]byte, error) {
	if len(paths) == 0 {
		paths = Files
	}
	var set descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	var add func(protoreflect.FileDescriptor)
	add = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		for i := 0; i < f.Imports().Len(); i++ {
			add(f.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
	}
	for _, p := range paths {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(p)
		if err != nil {
			return nil, fmt.Errorf("%s is not linked in: %w", p, err)
		}
		add(fd)
	}
	return proto.Marshal(&set)
}
