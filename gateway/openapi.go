package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
)

// buildOpenAPI merges OpenAPI v2 documents and converts the result to
// OpenAPI 3.0. Paths, definitions, parameters, responses and security
// definitions are united; the same name with different content in two
// documents is an error, as two operations on one path and verb are.
//
// The contracts' protovalidate rules are written into the documents
// (addRules), operation ids made unique, and a title and version that are
// file names or "version not set" replaced by the services' names and
// package versions unless title and version are given.
func buildOpenAPI(docs [][]byte, title, version string, services []Service) (v2, v3 []byte, err error) {
	merged := map[string]any{}
	for i, raw := range docs {
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return nil, nil, fmt.Errorf("gateway: OpenAPI document %d is not JSON: %w", i+1, err)
		}
		if v, _ := doc["swagger"].(string); v != "2.0" {
			return nil, nil, fmt.Errorf("gateway: OpenAPI document %d is not OpenAPI 2.0 (swagger: %q): pass protoc-gen-openapiv2 output", i+1, v)
		}
		if err := mergeOpenAPI(merged, doc, i == 0); err != nil {
			return nil, nil, fmt.Errorf("gateway: merging OpenAPI document %d: %w", i+1, err)
		}
	}
	info, _ := merged["info"].(map[string]any)
	if info == nil {
		info = map[string]any{}
	}
	merged["info"] = info
	defTitle, defVersion := defaultInfo(services)
	if t, _ := info["title"].(string); title == "" && (len(docs) > 1 || t == "" || strings.HasSuffix(t, ".proto")) && defTitle != "" {
		// The title of a single file ("users/v1/users.proto") describes
		// neither the API nor a merge.
		title = defTitle
	}
	if v, _ := info["version"].(string); version == "" && (v == "" || v == "version not set") {
		version = defVersion
		if version == "" {
			version = "unversioned"
		}
	}
	if title != "" {
		info["title"] = title
	}
	if version != "" {
		info["version"] = version
	}
	ops := contractOps(services)
	addRules(merged, ops)
	uniqueOperationIDs(merged, ops)
	if v2, err = json.Marshal(merged); err != nil {
		return nil, nil, fmt.Errorf("gateway: encoding the merged OpenAPI document: %w", err)
	}
	var doc2 openapi2.T
	if err := json.Unmarshal(v2, &doc2); err != nil {
		return nil, nil, fmt.Errorf("gateway: reading the merged OpenAPI document: %w", err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: converting OpenAPI 2 to 3: %w", err)
	}
	if v3, err = json.Marshal(doc3); err != nil {
		return nil, nil, fmt.Errorf("gateway: encoding the OpenAPI 3 document: %w", err)
	}
	// Re-encode through a map for sorted keys and a stable output.
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(v3))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, nil, err
	}
	v3, err = json.Marshal(m)
	return v2, v3, err
}

func mergeOpenAPI(dst, src map[string]any, first bool) error {
	for k, v := range src {
		switch k {
		case "paths":
			if err := mergePaths(dst, v); err != nil {
				return err
			}
		case "definitions", "parameters", "responses", "securityDefinitions":
			if err := mergeNamed(dst, k, v); err != nil {
				return err
			}
		case "tags":
			mergeTags(dst, v)
		case "consumes", "produces", "schemes":
			dst[k] = unionStrings(dst[k], v)
		default:
			if _, ok := dst[k]; !ok || first {
				dst[k] = v
			}
		}
	}
	return nil
}

// mergePaths unites the paths of two documents. Two templates that differ
// only in their parameters' names ("/v1/users/{userId}" in one document,
// "/v1/users/{id}" in another) are one path to OpenAPI 3, which forbids
// both in one document: the later one's operations join the earlier path,
// their path parameters renamed to its names. The same verb on both is an
// error, as two operations on one path and verb are.
func mergePaths(dst map[string]any, v any) error {
	src, _ := v.(map[string]any)
	paths, _ := dst["paths"].(map[string]any)
	if paths == nil {
		paths = map[string]any{}
		dst["paths"] = paths
	}
	byShape := map[string]string{}
	for p := range paths {
		byShape[pathShape(p)] = p
	}
	// Sorted, so that which template wins does not depend on map order.
	incoming := make([]string, 0, len(src))
	for p := range src {
		incoming = append(incoming, p)
	}
	sort.Strings(incoming)
	for _, p := range incoming {
		ops, _ := src[p].(map[string]any)
		target := p
		if q, ok := byShape[pathShape(p)]; ok && q != p {
			target = q
			renamePathParams(ops, templateParams(p), templateParams(q))
		}
		have, _ := paths[target].(map[string]any)
		if have == nil {
			paths[target] = ops
			byShape[pathShape(target)] = target
			continue
		}
		for verb, op := range ops {
			if old, ok := have[verb]; ok && !reflect.DeepEqual(old, op) {
				if target != p {
					return fmt.Errorf("two documents describe %s on %s and %s, which OpenAPI 3 takes for one path", verb, target, p)
				}
				return fmt.Errorf("two documents describe %s %s differently", verb, p)
			}
			have[verb] = op
		}
	}
	return nil
}

var templateParam = regexp.MustCompile(`\{([^}=]*)(=[^}]*)?\}`)

// pathShape is a path template with its parameters' names left out.
func pathShape(p string) string { return templateParam.ReplaceAllString(p, "{}") }

// templateParams lists the names of a template's parameters in order.
func templateParams(p string) []string {
	var out []string
	for _, m := range templateParam.FindAllStringSubmatch(p, -1) {
		out = append(out, m[1])
	}
	return out
}

// renamePathParams renames the path parameters of a path item's
// operations (and of the item itself) from one template's names to
// another's, by position.
func renamePathParams(item map[string]any, from, to []string) {
	names := map[string]string{}
	for i := range from {
		if i < len(to) {
			names[from[i]] = to[i]
		}
	}
	rename := func(params any) {
		list, _ := params.([]any)
		for _, p := range list {
			m, _ := p.(map[string]any)
			if in, _ := m["in"].(string); in != "path" {
				continue
			}
			if n, ok := names[fmt.Sprint(m["name"])]; ok {
				m["name"] = n
			}
		}
	}
	for key, v := range item {
		if key == "parameters" {
			rename(v)
			continue
		}
		if op, ok := v.(map[string]any); ok {
			rename(op["parameters"])
		}
	}
}

func mergeNamed(dst map[string]any, section string, v any) error {
	src, _ := v.(map[string]any)
	have, _ := dst[section].(map[string]any)
	if have == nil {
		have = map[string]any{}
		dst[section] = have
	}
	for name, def := range src {
		if old, ok := have[name]; ok && !reflect.DeepEqual(old, def) {
			return fmt.Errorf("%s %q differs between documents: protoc-gen-openapiv2 names schemas by package suffix, so two packages with the same last element collide; generate with openapi_naming_strategy=fqn", section, name)
		}
		have[name] = def
	}
	return nil
}

func mergeTags(dst map[string]any, v any) {
	src, _ := v.([]any)
	have, _ := dst["tags"].([]any)
	names := map[string]bool{}
	for _, t := range have {
		if m, ok := t.(map[string]any); ok {
			n, _ := m["name"].(string)
			names[n] = true
		}
	}
	for _, t := range src {
		m, _ := t.(map[string]any)
		n, _ := m["name"].(string)
		if !names[n] {
			names[n] = true
			have = append(have, t)
		}
	}
	dst["tags"] = have
}

func unionStrings(a, b any) any {
	seen := map[string]bool{}
	var out []string
	for _, l := range []any{a, b} {
		items, _ := l.([]any)
		for _, it := range items {
			if s, ok := it.(string); ok && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	res := make([]any, len(out))
	for i, s := range out {
		res[i] = s
	}
	return res
}
