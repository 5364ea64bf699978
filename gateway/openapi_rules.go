package gateway

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// apiOp is what the contract says about one OpenAPI operation: the request
// message and the field the HTTP body maps to.
type apiOp struct {
	service, method string // full service name, short method name
	in              protoreflect.MessageDescriptor
	body            string // "*", a field name, or "" for no body
	stream          bool   // server-streaming
}

// contractOps finds the request message of every HTTP binding of services,
// keyed by lower-case verb and path shape (templates without parameter
// names, which is how the OpenAPI document's paths are matched). Messages
// are looked up among the linked-in descriptors (the generated code the
// RegisterHTTP functions belong to registers them); a method whose
// descriptor is missing gets no rules.
func contractOps(services []Service) map[string]apiOp {
	out := map[string]apiOp{}
	for _, s := range services {
		for _, m := range s.Contract.Methods {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(s.Contract.Name + "." + m.Name))
			md, ok := d.(protoreflect.MethodDescriptor)
			if err != nil || !ok {
				continue
			}
			for _, h := range m.HTTP {
				out[strings.ToLower(h.Method)+" "+pathShape(h.Pattern)] = apiOp{service: s.Contract.Name, method: m.Name, in: md.Input(), body: h.Body, stream: m.ServerStreaming}
			}
		}
	}
	return out
}

// addRules writes the protovalidate rules of the request messages into an
// OpenAPI 2 document, as the JSON Schema keywords that say the same:
// minLength, maxLength, pattern, format, minimum, maximum, exclusive
// bounds, enum, minItems, maxItems, uniqueItems and required — on path and
// query parameters, and on the definitions request bodies refer to (and the
// definitions their fields refer to). A rule with no JSON Schema twin
// (a CEL expression, prefix, bytes lengths, 64-bit bounds on numbers JSON
// carries as strings) is enforced all the same but not described.
// Server-streaming operations produce NDJSON (ContentTypeStream).
func addRules(doc map[string]any, ops map[string]apiOp) {
	r := ruleWriter{defs: asMap(doc["definitions"]), done: map[string]bool{}}
	for path, item := range asMap(doc["paths"]) {
		for verb, op := range asMap(item) {
			info, ok := ops[verb+" "+pathShape(path)]
			if !ok || asMap(op) == nil {
				continue
			}
			if info.stream {
				// A server stream is served as NDJSON, one JSON object per
				// line; an error before the first message as JSON.
				asMap(op)["produces"] = []any{ContentTypeStream, "application/json"}
			}
			for _, p := range asList(asMap(op)["parameters"]) {
				param := asMap(p)
				if param == nil {
					continue
				}
				if param["in"] == "body" {
					r.body(param, info)
					continue
				}
				name, _ := param["name"].(string)
				fd := fieldByPath(info.in, name)
				if fd == nil {
					continue
				}
				rules := fieldRules(fd)
				r.apply(param, rules, fd.IsList())
				if rules.GetRequired() || (!strings.Contains(name, ".") && zeroInvalid(info.in)[fd.Name()]) {
					param["required"] = true
				}
			}
		}
	}
}

type ruleWriter struct {
	defs map[string]any
	done map[string]bool
}

func (r ruleWriter) body(param map[string]any, info apiOp) {
	md := info.in
	if info.body != "*" && info.body != "" {
		fd := md.Fields().ByName(protoreflect.Name(info.body))
		if fd == nil {
			return
		}
		rules := fieldRules(fd)
		if rules.GetRequired() {
			param["required"] = true
		}
		if fd.Message() == nil || fd.IsMap() {
			r.apply(asMap(param["schema"]), rules, fd.IsList())
			return
		}
		if fd.IsList() {
			r.apply(asMap(param["schema"]), rules, true)
			r.schema(asMap(asMap(param["schema"])["items"]), fd.Message())
			return
		}
		md = fd.Message()
	}
	r.schema(asMap(param["schema"]), md)
}

// schema annotates a schema (a $ref to a definition, or an inline object)
// that describes message md.
func (r ruleWriter) schema(s map[string]any, md protoreflect.MessageDescriptor) {
	if s == nil {
		return
	}
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		if r.done[name] {
			return
		}
		r.done[name] = true
		s = asMap(r.defs[name])
		if s == nil {
			return
		}
	}
	props := asMap(s["properties"])
	zero := zeroInvalid(md)
	var required []string
	for _, v := range asList(s["required"]) {
		if n, ok := v.(string); ok {
			required = append(required, n)
		}
	}
	for name, p := range props {
		ps := asMap(p)
		fd := fieldByJSONName(md, name)
		if fd == nil || ps == nil {
			continue
		}
		rules := fieldRules(fd)
		if fd.Message() != nil && !fd.IsMap() {
			if fd.IsList() {
				r.apply(ps, rules, true)
				r.schema(asMap(ps["items"]), fd.Message())
			} else {
				r.schema(ps, fd.Message())
			}
		} else {
			r.apply(ps, rules, fd.IsList())
		}
		if (rules.GetRequired() || zero[fd.Name()]) && !slices.Contains(required, name) {
			required = append(required, name)
		}
	}
	if len(required) > 0 {
		sort.Strings(required) // the properties' map order is random
		list := make([]any, len(required))
		for i, n := range required {
			list[i] = n
		}
		s["required"] = list
	}
}

// apply writes rules onto s, the schema (or OpenAPI 2 parameter) of one
// field; list says the field is repeated and s describes the array.
func (r ruleWriter) apply(s map[string]any, rules *validate.FieldRules, list bool) {
	if s == nil || rules == nil {
		return
	}
	if rules.GetRequired() && !list && s["type"] == "string" && s["minLength"] == nil {
		s["minLength"] = 1 // required: not empty
	}
	if list {
		rep := rules.GetRepeated()
		if rep == nil {
			return
		}
		if rep.HasMinItems() {
			s["minItems"] = rep.GetMinItems()
		}
		if rep.HasMaxItems() {
			s["maxItems"] = rep.GetMaxItems()
		}
		if rep.GetUnique() {
			s["uniqueItems"] = true
		}
		if items := asMap(s["items"]); items != nil && items["$ref"] == nil {
			r.apply(items, rep.GetItems(), false)
		}
		return
	}
	m := rules.ProtoReflect()
	oneof := m.Descriptor().Oneofs().ByName("type")
	if oneof == nil {
		return
	}
	which := m.WhichOneof(oneof)
	if which == nil || which.Message() == nil {
		return
	}
	kind := string(which.Name())
	sub := m.Get(which).Message()
	switch kind {
	case "string":
		sub.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch fd.Name() {
			case "min_len":
				s["minLength"] = v.Uint()
			case "max_len":
				s["maxLength"] = v.Uint()
			case "len":
				s["minLength"], s["maxLength"] = v.Uint(), v.Uint()
			case "pattern":
				s["pattern"] = v.String()
			case "const":
				s["enum"] = []any{v.String()}
			case "in":
				s["enum"] = listValues(v.List())
			case "email", "uuid", "hostname", "ipv4", "ipv6", "uri":
				if v.Bool() {
					s["format"] = string(fd.Name())
				}
			}
			return true
		})
	case "int32", "uint32", "sint32", "fixed32", "sfixed32", "float", "double",
		"int64", "uint64", "sint64", "fixed64", "sfixed64":
		if t, _ := s["type"].(string); t != "integer" && t != "number" {
			// 64-bit integers travel as JSON strings: bounds on numbers
			// would describe nothing.
			return
		}
		sub.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch fd.Name() {
			case "gte":
				s["minimum"] = v.Interface()
			case "gt":
				s["minimum"], s["exclusiveMinimum"] = v.Interface(), true
			case "lte":
				s["maximum"] = v.Interface()
			case "lt":
				s["maximum"], s["exclusiveMaximum"] = v.Interface(), true
			case "const":
				s["enum"] = []any{v.Interface()}
			case "in":
				s["enum"] = listValues(v.List())
			}
			return true
		})
	}
}

// zeroInvalid names the fields of md whose zero value breaks their rules
// (a string with min_len 1, a number that must be positive, a repeated
// field with min_items 1, an e-mail address): proto3 JSON reads a missing
// field as its zero value, so to JSON Schema these fields are required.
// It asks protovalidate itself, about an empty message.
func zeroInvalid(md protoreflect.MessageDescriptor) map[protoreflect.Name]bool {
	out := map[protoreflect.Name]bool{}
	err := protovalidate.Validate(dynamicpb.NewMessage(md))
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return out
	}
	for _, v := range verr.Violations {
		if els := v.Proto.GetField().GetElements(); len(els) == 1 {
			out[protoreflect.Name(els[0].GetFieldName())] = true
		}
	}
	return out
}

func fieldRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	opts := fd.Options()
	if opts == nil {
		return nil
	}
	rules, _ := proto.GetExtension(opts, validate.E_Field).(*validate.FieldRules)
	return rules
}

// fieldByPath resolves a parameter name ("pageSize", "user.email", or the
// proto names) to a field of md.
func fieldByPath(md protoreflect.MessageDescriptor, path string) protoreflect.FieldDescriptor {
	var fd protoreflect.FieldDescriptor
	for _, part := range strings.Split(path, ".") {
		if md == nil {
			return nil
		}
		if fd = fieldByJSONName(md, part); fd == nil {
			return nil
		}
		md = fd.Message()
	}
	return fd
}

func fieldByJSONName(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	fields := md.Fields()
	if fd := fields.ByJSONName(name); fd != nil {
		return fd
	}
	return fields.ByName(protoreflect.Name(name))
}

func listValues(l protoreflect.List) []any {
	out := make([]any, l.Len())
	for i := range out {
		out[i] = l.Get(i).Interface()
	}
	return out
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asList(v any) []any         { l, _ := v.([]any); return l }

// uniqueOperationIDs makes every operationId of the document unique:
// protoc-gen-openapiv2 names operations <Service>_<Method> after the
// service's short name, so two packages' services of one name (users.v1
// and users.v2) collide once merged. Each colliding (or missing) id becomes
// the method's full name with underscores (users_v1_UsersService_GetUser),
// which depends only on the contracts, so ids stay stable from build to
// build. An id that is still taken gets the verb appended.
func uniqueOperationIDs(doc map[string]any, ops map[string]apiOp) {
	type ref struct {
		op   map[string]any
		key  string
		verb string
	}
	byID := map[string][]ref{}
	var missing []ref
	for path, item := range asMap(doc["paths"]) {
		for verb, op := range asMap(item) {
			m := asMap(op)
			if m == nil || verb == "parameters" {
				continue
			}
			r := ref{m, verb + " " + pathShape(path), verb}
			if id, _ := m["operationId"].(string); id != "" {
				byID[id] = append(byID[id], r)
			} else {
				missing = append(missing, r)
			}
		}
	}
	var rename []ref
	for _, refs := range byID {
		if len(refs) > 1 {
			rename = append(rename, refs...)
		}
	}
	rename = append(rename, missing...)
	taken := map[string]bool{}
	for id, refs := range byID {
		if len(refs) == 1 {
			taken[id] = true
		}
	}
	sort.Slice(rename, func(i, j int) bool { return rename[i].key < rename[j].key })
	for _, r := range rename {
		info, ok := ops[r.key]
		id := strings.ReplaceAll(info.service, ".", "_") + "_" + info.method
		if !ok {
			id = strings.Trim(nonIdent.ReplaceAllString(r.key, "_"), "_")
		}
		if taken[id] {
			id += "_" + r.verb
		}
		for n := 2; taken[id]; n++ {
			id = fmt.Sprintf("%s_%d", strings.TrimRight(id, "_0123456789"), n)
		}
		taken[id] = true
		r.op["operationId"] = id
	}
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9]+`)

// defaultInfo gives the document the title and version the contracts
// imply when it has only protoc-gen-openapiv2's placeholders (a file name,
// "version not set"): the services' names, and their packages' version
// elements (v1, v2beta1, ...).
func defaultInfo(services []Service) (title, version string) {
	var names, versions []string
	seen := map[string]bool{}
	for _, s := range services {
		names = append(names, s.Contract.Name)
		parts := strings.Split(s.Contract.Name, ".")
		for _, p := range parts[:len(parts)-1] {
			if versionElem.MatchString(p) && !seen[p] {
				seen[p] = true
				versions = append(versions, p)
			}
		}
	}
	sort.Strings(names)
	sort.Strings(versions)
	return strings.Join(names, ", "), strings.Join(versions, ", ")
}

var versionElem = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]*)?$`)
