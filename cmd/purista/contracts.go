package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/contract"
)

// contractSet is what the CLI knows of the user's contracts: the
// descriptors (for JSON and dynamic messages) and purista's description of
// their services and events (for topics, routes, keys and timeouts). The
// CLI compiles no contract in: every command reads them from the user's
// buf module or image.
type contractSet struct {
	files    *protoregistry.Files
	types    *dynamicpb.Types
	source   string
	services []*purista.Service
	events   []*purista.Event
}

// contractFlags say where the contracts are.
type contractFlags struct {
	image string
	dir   string
}

func (f *contractFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.image, "image", os.Getenv("PURISTA_IMAGE"),
		"the contracts as a buf image or FileDescriptorSet (`buf build -o FILE`) (env PURISTA_IMAGE)")
	fs.StringVar(&f.dir, "contracts", "",
		"directory of the contracts' buf.yaml, built with buf (default: the current directory, or what purista.yaml names)")
}

// errNoContracts explains every way to give the CLI its contracts.
var errNoContracts = usageError{errors.New("no contracts: run purista in the directory of your buf.yaml (or of a purista.yaml that names the contracts), " +
	"pass --contracts DIR (a buf module or workspace), or pass --image FILE made with `buf build -o FILE`")}

// load reads the contracts from the image, the buf module named, the one
// purista.yaml names, or the buf module in the current directory.
func (f contractFlags) load(ctx context.Context) (*contractSet, error) {
	if f.image == "" && f.dir == "" {
		p, err := readProjectFile(".")
		switch {
		case err == nil:
			f = p.contractFlags(f)
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		case hasBufConfig("."):
			f.dir = "."
		default:
			return nil, errNoContracts
		}
	}
	if f.image != "" {
		data, err := os.ReadFile(f.image)
		if err != nil {
			return nil, usageError{fmt.Errorf("reading the contracts image: %w (make one with `buf build -o %s`)", err, f.image)}
		}
		return parseImage(data, f.image)
	}
	data, err := bufBuild(ctx, f.dir)
	if err != nil {
		return nil, err
	}
	return parseImage(data, "the buf module in "+f.dir)
}

func hasBufConfig(dir string) bool {
	for _, name := range []string{"buf.yaml", "buf.work.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// parseImage reads a buf image or FileDescriptorSet: an image is a
// FileDescriptorSet on the wire, with extra fields the set ignores.
func parseImage(data []byte, source string) (*contractSet, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%s is not a buf image or binary FileDescriptorSet (%v): build one with `buf build -o set.binpb` or `protoc --include_imports --descriptor_set_out=set.binpb`", source, err)
	}
	if len(set.File) == 0 {
		return nil, fmt.Errorf("%s holds no .proto file: build it from your contracts with `buf build -o set.binpb`", source)
	}
	return readContracts(&set, source)
}

// readContracts is the one place the CLI turns descriptors into services,
// events, topics and routes: with internal/contract, the model the plugin
// generates code from, so the CLI refuses what the plugin refuses and
// describes every service and event as the generated code does.
func readContracts(set *descriptorpb.FileDescriptorSet, source string) (*contractSet, error) {
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("the contracts in %s are incomplete (%v): build them with their imports (buf build does; protoc needs --include_imports)", source, err)
	}
	var fds []protoreflect.FileDescriptor
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		fds = append(fds, fd)
		return true
	})
	// protoregistry ranges in no fixed order; the model reports problems
	// and route conflicts in the order of the files.
	sort.Slice(fds, func(i, j int) bool { return fds[i].Path() < fds[j].Path() })
	model, err := contract.Build(fds, contract.Options{})
	if err != nil {
		return nil, fmt.Errorf("the contracts in %s break purista's contract rules; fix them and build again:\n%w", source, err)
	}
	c := &contractSet{files: files, types: dynamicpb.NewTypes(files), source: source}
	for _, s := range model.Services() {
		c.services = append(c.services, s.Describe())
	}
	for _, e := range model.Events() {
		c.events = append(c.events, e.Describe())
	}
	sort.Slice(c.services, func(i, j int) bool { return c.services[i].Name < c.services[j].Name })
	sort.Slice(c.events, func(i, j int) bool { return c.events[i].Name < c.events[j].Name })
	if len(c.services) == 0 && len(c.events) == 0 {
		return nil, fmt.Errorf("the contracts in %s declare no service and no event: is it the right module?", source)
	}
	return c, nil
}

// method resolves "pkg.Service/Method" ("/pkg.Service/Method" and
// "pkg.Service.Method" too).
func (c *contractSet) method(name string) (protoreflect.MethodDescriptor, error) {
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
			svc, c.source, strings.Join(c.serviceNames(), ", "))}
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

func (c *contractSet) serviceNames() []string {
	names := make([]string, len(c.services))
	for i, s := range c.services {
		names[i] = s.Name
	}
	return names
}

func (c *contractSet) service(name string) (*purista.Service, bool) {
	for _, s := range c.services {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// resolver resolves Any and extension types: the well-known and error
// detail types this binary links first, then the contracts'.
func (c *contractSet) resolver() interface {
	protoregistry.MessageTypeResolver
	protoregistry.ExtensionTypeResolver
} {
	return chainResolver{c.types, protoregistry.GlobalTypes}
}

// bufBuild runs `buf build -o -` in dir and returns the image.
func bufBuild(ctx context.Context, dir string) ([]byte, error) {
	if !hasBufConfig(dir) {
		return nil, usageError{fmt.Errorf("%s has no buf.yaml: pass the directory of your contracts' buf.yaml with --contracts, or an image with --image", dir)}
	}
	argv, err := findBuf(dir)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], "build", "-o", "-")...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("`buf build` of the contracts in %s failed (%v):\n%s\nfix the contracts (imports missing? `make tools` fetches them in a repository purista init made), or pass an image you built with --image",
			dir, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// findBuf returns the command line that runs buf: $PURISTA_BUF, buf on
// PATH, a buf installed with npm in dir or a directory above it (as `make
// tools` does, in .cache/buf), or npx.
func findBuf(dir string) ([]string, error) {
	if p := os.Getenv("PURISTA_BUF"); p != "" {
		return []string{p}, nil
	}
	if p, err := exec.LookPath("buf"); err == nil {
		return []string{p}, nil
	}
	if abs, err := filepath.Abs(dir); err == nil {
		for d := abs; ; d = filepath.Dir(d) {
			for _, rel := range []string{".cache/buf/node_modules/.bin/buf", "node_modules/.bin/buf"} {
				if p := filepath.Join(d, rel); isExecutable(p) {
					return []string{p}, nil
				}
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if p, err := exec.LookPath("npx"); err == nil {
		return []string{p, "--yes", "@bufbuild/buf@" + bufVersion}, nil
	}
	return nil, errors.New("buf is needed to read the contracts but was not found: install it (npm install -g @bufbuild/buf, " +
		"or `make tools` in a repository purista init made), set PURISTA_BUF to its path, or build an image elsewhere and pass it with --image")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
