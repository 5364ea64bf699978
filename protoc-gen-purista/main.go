// Command protoc-gen-purista generates the purista wiring of protobuf
// services and events: for each .proto file that declares a service or an
// event message it writes a <name>.purista.go file beside the output of
// protoc-gen-go and protoc-gen-go-grpc, in the same Go package. The file
// describes the file's services (request topic, per-method timeouts,
// idempotency, partition keys, google.api.http routes, gateway
// registration) and events (topic, partition key, a typed Publish function)
// as values that programs hand to the transports and the gateway.
//
// The generated code is small: calling and serving go through the ordinary
// gRPC code, because every purista transport implements
// grpc.ClientConnInterface and grpc.ServiceRegistrar.
//
// Install the version matching the runtime your go.mod requires:
//
//	go install github.com/purista-go/purista/protoc-gen-purista@<version>
//
// In a service repository, run it with the Go, gRPC and grpc-gateway
// plugins. strategy: all hands every file to one invocation, so HTTP routes
// that collide across packages are found too:
//
//	version: v2
//	clean: true
//	plugins:
//	  - local: protoc-gen-go
//	    out: gen
//	    opt: paths=source_relative
//	  - local: protoc-gen-go-grpc
//	    out: gen
//	    opt: paths=source_relative
//	  - local: protoc-gen-grpc-gateway
//	    out: gen
//	    opt: paths=source_relative
//	  - local: protoc-gen-purista
//	    out: gen
//	    opt: paths=source_relative
//	    strategy: all
//	inputs:
//	  - directory: proto
//
// In a contracts repository shared by several teams (one buf module, one
// package per team: proto/users/v1, proto/orders/v1, each file with a
// go_package under the repository's module), the same plugins generate one
// Go module that every service and the gateway import; module= strips the
// module path from the output names:
//
//	version: v2
//	clean: true
//	plugins:
//	  - local: protoc-gen-go
//	    out: gen
//	    opt: module=github.com/acme/contracts/gen
//	  - local: protoc-gen-go-grpc
//	    out: gen
//	    opt: module=github.com/acme/contracts/gen
//	  - local: protoc-gen-grpc-gateway
//	    out: gen
//	    opt: module=github.com/acme/contracts/gen
//	  - local: protoc-gen-purista
//	    out: gen
//	    opt: module=github.com/acme/contracts/gen
//	    strategy: all
//	inputs:
//	  - directory: proto
//
// Options (opt:, comma separated):
//
//	gateway=true|false  write Register<Service>HTTP for services with HTTP
//	                    routes (the RegisterHTTP of a gateway.Service); it
//	                    calls the Register<Service>HandlerClient function of
//	                    protoc-gen-grpc-gateway, so set false when that
//	                    plugin does not run (default true)
//
// The contract options it reads, (purista.v1.service), (purista.v1.method)
// and (purista.v1.message), are declared in purista/v1/options.proto of the
// purista module. Contracts that break a rule (a duplicate HTTP route, an
// invalid topic, a partition key that is no scalar field, a client-streaming
// method bound to HTTP, a misused event option) make the plugin fail with a
// message naming the file, the element and the fix; see docs/plugin.md.
//
// protoc-gen-purista --version prints the version.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/purista-go/purista"
)

const usage = `protoc-gen-purista generates purista wiring for protobuf services and events.
It is run by buf or protoc, which write a CodeGeneratorRequest to its standard input.

  protoc-gen-purista --version   print the version

See https://pkg.go.dev/github.com/purista-go/purista/protoc-gen-purista.
`

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "--version", "-version":
			fmt.Println(purista.Version)
			return
		case "--help", "-help", "-h":
			fmt.Print(usage)
			return
		default:
			fmt.Fprintf(os.Stderr, "protoc-gen-purista: unknown argument %q\n\n%s", os.Args[1], usage)
			os.Exit(2)
		}
	}
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "protoc-gen-purista: %v\n", err)
		os.Exit(1)
	}
}

// run reads a CodeGeneratorRequest from in and writes the response to out.
// Every problem with the request, its parameters included, is reported in
// the response's error field, where buf and protoc show it; only I/O and
// decoding failures are returned.
func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	req := &pluginpb.CodeGeneratorRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return fmt.Errorf("decoding the request (this program is run by buf or protoc, not directly): %w", err)
	}
	resp := respond(req)
	data, err = proto.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encoding the response: %w", err)
	}
	if _, err := out.Write(data); err != nil {
		return fmt.Errorf("writing the response: %w", err)
	}
	return nil
}

// respond runs the generator on req.
func respond(req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorResponse {
	var cfg config
	flags := flag.NewFlagSet("protoc-gen-purista", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.BoolVar(&cfg.gateway, "gateway", true, "")
	opts := protogen.Options{
		ParamFunc: func(name, value string) error {
			if flags.Lookup(name) == nil {
				return fmt.Errorf("unknown option %q: protoc-gen-purista knows gateway=true|false", name)
			}
			if err := flags.Set(name, value); err != nil {
				// Every option is a bool so far.
				return fmt.Errorf("option %s=%s: %s takes true or false", name, value, name)
			}
			return nil
		},
	}
	gen, err := opts.New(req)
	if err != nil {
		return &pluginpb.CodeGeneratorResponse{Error: proto.String(err.Error())}
	}
	gen.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL |
		pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)
	gen.SupportedEditionsMinimum = descriptorpb.Edition_EDITION_PROTO2
	gen.SupportedEditionsMaximum = descriptorpb.Edition_EDITION_2023
	if err := generate(gen, cfg); err != nil {
		gen.Error(err)
	}
	return gen.Response()
}

// config holds the plugin's options.
type config struct {
	gateway bool
}
