package contract

import (
	"fmt"
	"strings"

	"github.com/purista-go/purista"
)

// checkRoutes reports HTTP routes that two bindings share: the same verb
// and the same path template once variable names are ignored, so
// /v1/users/{id} and /v1/users/{user_id} collide. It looks at every
// modelled file, which with buf's strategy: all is everything generated
// together.
func (b *builder) checkRoutes(model *Model) {
	type owner struct {
		method *Method
		rule   purista.HTTPRule
	}
	seen := map[string]owner{}
	for _, s := range model.Services() {
		for _, m := range s.Methods {
			for _, r := range m.HTTP {
				key, err := RouteKey(r.Method, r.Pattern)
				if err != nil {
					b.errorf(m.Desc, "method %s: %v", m.Desc.FullName(), err)
					continue
				}
				if first, ok := seen[key]; ok {
					b.errorf(m.Desc, "method %s: HTTP route %s %s is already bound by method %s (%s %s, in %s); change the path or the verb of one of them",
						m.Desc.FullName(), r.Method, r.Pattern, first.method.Desc.FullName(),
						first.rule.Method, first.rule.Pattern, first.method.Desc.ParentFile().Path())
					continue
				}
				seen[key] = owner{m, r}
			}
		}
	}
}

// RouteKey returns what two HTTP bindings that match the same requests
// have in common: the verb and the path template with variables replaced
// by their segment patterns. The plugin refuses two bindings with one key,
// and the gateway, which may be handed services generated apart, checks
// them again with the same rule.
func RouteKey(verb, pattern string) (string, error) {
	tmpl, err := NormalizeTemplate(pattern)
	if err != nil {
		return "", fmt.Errorf("google.api.http path %q: %w", pattern, err)
	}
	return verb + " " + tmpl, nil
}

// NormalizeTemplate rewrites a google.api.http path template so that two
// templates matching the same requests are equal: a variable becomes its
// segment pattern ("{id}" is "*", "{name=users/*}" is "users/*").
func NormalizeTemplate(t string) (string, error) {
	if !strings.HasPrefix(t, "/") {
		return "", fmt.Errorf("a path template starts with \"/\"")
	}
	var sb strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch c {
		case '{':
			end := strings.IndexByte(t[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("a variable's \"{\" is not closed; close it with \"}\"")
			}
			v := t[i+1 : i+end]
			if strings.ContainsRune(v, '{') {
				return "", fmt.Errorf("variables cannot nest; remove the inner \"{\"")
			}
			name, pattern, ok := strings.Cut(v, "=")
			if name == "" {
				return "", fmt.Errorf("a variable has no field name; write {field} or {field=pattern}")
			}
			if !ok {
				pattern = "*"
			}
			sb.WriteString(pattern)
			i += end
		case '}':
			return "", fmt.Errorf("a \"}\" closes no variable; remove it or open the variable with \"{\"")
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String(), nil
}
