package main

import (
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// chainResolver resolves Any and extension types: the types this binary
// links first (well-known types, google.rpc error details), then the
// contracts'.
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
