// Package acl derives the Kafka ACLs of a purista system from its
// contracts and a list of principals (docs/security.md): each service
// principal may take its own requests, answer them, publish its own events
// and read its subscriptions; each caller may write only the request
// topics of the services it calls and read only its own reply topics.
// Plan computes them; Apply creates them on a cluster through the admin
// API, idempotently.
package acl

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/transport/kafka"
)

// Config is the acl: section of purista.yaml.
type Config struct {
	// TopicPrefix is the prefix of every topic and group, as the
	// processes were given it (WithTopicPrefix).
	TopicPrefix string `yaml:"topic_prefix"`
	// Principals are the system's processes by Kafka principal.
	Principals []Principal `yaml:"principals"`
}

// Principal is one Kafka principal and what its processes do.
type Principal struct {
	// Principal is the Kafka principal, e.g. "User:orders".
	Principal string `yaml:"principal"`
	// Serves lists the full names of the services it serves.
	Serves []string `yaml:"serves"`
	// Calls lists the full names of the services it calls; "*" is every
	// service of the contracts.
	Calls []string `yaml:"calls"`
	// Gateway adds to Calls every service with an HTTP route.
	Gateway bool `yaml:"gateway"`
	// ClientIDPrefix starts the client id of every instance of the
	// principal; default: the principal's name after "User:", then "-".
	ClientIDPrefix string `yaml:"client_id_prefix"`
}

// ResourceType is what an ACL is about.
type ResourceType string

// Resource types.
const (
	Topic ResourceType = "topic"
	Group ResourceType = "group"
)

// PatternType says how an ACL's name matches resources.
type PatternType string

// Pattern types.
const (
	Literal  PatternType = "literal"
	Prefixed PatternType = "prefixed"
)

// Operation is a Kafka ACL operation.
type Operation string

// The operations purista's principals need.
const (
	Read   Operation = "READ"
	Write  Operation = "WRITE"
	Create Operation = "CREATE"
	Delete Operation = "DELETE"
)

// ACL is one ALLOW binding for any host.
type ACL struct {
	Principal string
	Resource  ResourceType
	Pattern   PatternType
	Name      string
	Operation Operation
	// Why says what the permission is for.
	Why string
}

func (a ACL) String() string {
	return fmt.Sprintf("%s %s %s:%s %s", a.Principal, a.Operation, a.Resource, a.Pattern, a.Name)
}

// key identifies the binding: two ACLs with the same key are one.
func (a ACL) key() string {
	return strings.Join([]string{a.Principal, string(a.Resource), string(a.Pattern), a.Name, string(a.Operation)}, "\x00")
}

// ClientIDPrefix returns the prefix every client id of p must start with.
func (p Principal) clientIDPrefix() string {
	if p.ClientIDPrefix != "" {
		return p.ClientIDPrefix
	}
	_, name, _ := strings.Cut(p.Principal, ":")
	return name + "-"
}

// ClientIDPrefix returns the client id prefix of the principal named
// principal in cfg, or "" when cfg has none by that name.
func (cfg Config) ClientIDPrefix(principal string) string {
	for _, p := range cfg.Principals {
		if p.Principal == principal {
			return p.clientIDPrefix()
		}
	}
	return ""
}

// Plan returns the ACLs of the principals of cfg for the contracts
// (services and events), sorted by principal, resource and name, or an
// error listing every problem of the configuration.
func Plan(services []*purista.Service, events []*purista.Event, cfg Config) ([]ACL, error) {
	byName := map[string]*purista.Service{}
	for _, s := range services {
		byName[s.Name] = s
	}
	var errs []string
	problem := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if cfg.TopicPrefix != "" {
		if err := purista.ValidateTopic(cfg.TopicPrefix); err != nil {
			problem("topic_prefix %q: %v", cfg.TopicPrefix, err)
		}
	}
	if len(cfg.Principals) == 0 {
		problem("no principals: list the system's processes under acl.principals (docs/security.md)")
	}
	servedBy := map[string]string{}
	seen := map[string]bool{}
	for i, p := range cfg.Principals {
		where := fmt.Sprintf("principal %d (%s)", i+1, p.Principal)
		kind, name, ok := strings.Cut(p.Principal, ":")
		switch {
		case !ok || kind == "" || name == "":
			problem("%s: write the principal as Kafka prints it, e.g. User:orders", where)
		case seen[p.Principal]:
			problem("%s: listed twice; merge its serves and calls into one entry", where)
		}
		seen[p.Principal] = true
		if len(p.Serves) == 0 && len(p.Calls) == 0 && !p.Gateway {
			problem("%s: serves nothing and calls nothing; give serves:, calls: or gateway: true", where)
		}
		if err := purista.ValidateTopic(p.clientIDPrefix()); err != nil {
			problem("%s: client id prefix %q: %v", where, p.clientIDPrefix(), err)
		}
		for _, s := range p.Serves {
			if byName[s] == nil {
				problem("%s: serves %s, which the contracts do not declare (services: %s)", where, s, names(services))
			} else if other, ok := servedBy[s]; ok {
				problem("%s: serves %s, which %s serves too; one principal per service keeps its requests its own", where, s, other)
			} else {
				servedBy[s] = p.Principal
			}
		}
		for _, s := range p.Calls {
			if s != "*" && byName[s] == nil {
				problem("%s: calls %s, which the contracts do not declare (services: %s)", where, s, names(services))
			}
		}
	}
	// A prefix of another principal's prefix would match its topics.
	for i, p := range cfg.Principals {
		for j, q := range cfg.Principals {
			if i != j && strings.HasPrefix(q.clientIDPrefix(), p.clientIDPrefix()) && (i < j || p.clientIDPrefix() != q.clientIDPrefix()) {
				problem("client id prefix %q of %s is a prefix of %q of %s: %s could read %s's replies; give them prefixes that do not start one another",
					p.clientIDPrefix(), p.Principal, q.clientIDPrefix(), q.Principal, p.Principal, q.Principal)
			}
		}
	}
	if len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}

	pre := cfg.TopicPrefix
	streamPrefix := map[string]string{} // service -> its principal's stream topic prefix
	for _, p := range cfg.Principals {
		for _, s := range p.Serves {
			streamPrefix[s] = pre + kafka.StreamTopicPrefix + p.clientIDPrefix()
		}
	}
	var out []ACL
	add := func(p string, r ResourceType, pat PatternType, name, why string, ops ...Operation) {
		for _, op := range ops {
			out = append(out, ACL{Principal: p, Resource: r, Pattern: pat, Name: name, Operation: op, Why: why})
		}
	}
	for _, p := range cfg.Principals {
		id := p.clientIDPrefix()
		for _, name := range p.Serves {
			s := byName[name]
			add(p.Principal, Topic, Literal, pre+requestTopic(s), "take the requests of "+name, Read)
			add(p.Principal, Group, Literal, pre+kafka.RequestGroup(name), "share the requests of "+name+" between its instances", Read)
			add(p.Principal, Topic, Prefixed, pre+kafka.ReplyTopicPrefix, "answer the callers of "+name, Write)
			add(p.Principal, Topic, Literal, pre+kafka.ReplyStoreTopic(name), "the reply store of "+name, Read, Write)
			add(p.Principal, Topic, Literal, pre+kafka.DeadLetterTopic(name), "dead letters of "+name, Write)
			for _, e := range published(s, events) {
				add(p.Principal, Topic, Literal, pre+e.Topic, "publish "+e.Name, Write)
			}
			for _, m := range s.Methods {
				if e := m.Subscribe; e != nil {
					add(p.Principal, Topic, Literal, pre+e.Topic, "receive "+e.Name+" ("+m.FullMethod+")", Read)
					add(p.Principal, Group, Literal, pre+kafka.SubscriptionGroup(name, e.Name), "share "+e.Name+" between the instances of "+name, Read)
				}
			}
			if streams(s) {
				add(p.Principal, Topic, Prefixed, pre+kafka.StreamTopicPrefix+id, "its instances' stream control topics", Create, Read, Write, Delete)
			}
		}
		callees := calls(p, services)
		if len(callees) == 0 {
			continue
		}
		add(p.Principal, Topic, Prefixed, pre+kafka.ReplyTopicPrefix+id, "its instances' reply topics", Create, Read, Write, Delete)
		for _, s := range callees {
			add(p.Principal, Topic, Literal, pre+requestTopic(s), "call "+s.Name, Write)
			if streams(s) {
				if sp, ok := streamPrefix[s.Name]; ok {
					add(p.Principal, Topic, Prefixed, sp, "acknowledge and cancel the streams of "+s.Name, Write)
				}
			}
		}
	}
	return dedup(out), nil
}

// Error lists every problem of a Config.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "acl configuration: " + strings.Join(e.Problems, "; ")
}

// IsConfigError reports whether err is a problem of the configuration.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

func names(services []*purista.Service) string {
	out := make([]string, len(services))
	for i, s := range services {
		out[i] = s.Name
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func requestTopic(s *purista.Service) string {
	if s.RequestTopic != "" {
		return s.RequestTopic
	}
	return purista.DefaultRequestTopic(s.Name)
}

// published returns the events service s publishes: those its methods
// emit, and those declared in its proto package.
func published(s *purista.Service, events []*purista.Event) []*purista.Event {
	var out []*purista.Event
	for _, m := range s.Methods {
		if m.Event != nil {
			out = append(out, m.Event)
		}
	}
	pkg := protoPackage(s.Name)
	for _, e := range events {
		if protoPackage(e.Name) == pkg {
			out = append(out, e)
		}
	}
	return out
}

func protoPackage(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

func streams(s *purista.Service) bool {
	return slices.ContainsFunc(s.Methods, func(m *purista.Method) bool { return m.ServerStreaming })
}

// calls returns the services p calls, in the order of services.
func calls(p Principal, services []*purista.Service) []*purista.Service {
	var out []*purista.Service
	for _, s := range services {
		hasHTTP := slices.ContainsFunc(s.Methods, func(m *purista.Method) bool { return len(m.HTTP) > 0 })
		if slices.Contains(p.Calls, "*") || slices.Contains(p.Calls, s.Name) || (p.Gateway && hasHTTP) {
			out = append(out, s)
		}
	}
	return out
}

// dedup drops repeated bindings (two events on one topic, a service
// calling itself) and sorts the rest.
func dedup(in []ACL) []ACL {
	seen := map[string]bool{}
	var out []ACL
	for _, a := range in {
		if !seen[a.key()] {
			seen[a.key()] = true
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Principal != b.Principal {
			return a.Principal < b.Principal
		}
		if a.Resource != b.Resource {
			return a.Resource > b.Resource // topics first
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Pattern != b.Pattern {
			return a.Pattern < b.Pattern
		}
		return opOrder(a.Operation) < opOrder(b.Operation)
	})
	return out
}

func opOrder(o Operation) int {
	return slices.Index([]Operation{Create, Read, Write, Delete}, o)
}
