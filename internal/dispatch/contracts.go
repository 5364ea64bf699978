package dispatch

import (
	"context"
	"fmt"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
)

// Contracts indexes the service contracts a transport was handed
// (WithContracts), for the look-ups of every call: the method's timeout,
// partition key, idempotency and events, and the service's request topic.
// It is built once and only read after, so it needs no lock. A nil
// *Contracts knows no service.
type Contracts struct {
	option   string // the transport's option that hands contracts over, for errors
	services map[string]*purista.Service
	methods  map[string]*purista.Method
	owners   map[string]*purista.Service
}

// NewContracts indexes services. Two different descriptions of one service
// are an error: the transport could not know which one to follow. option
// names the transport's option that hands contracts over ("kafka.WithContracts"),
// for the errors that tell the user to use it.
func NewContracts(option string, services []*purista.Service) (*Contracts, error) {
	c := &Contracts{option: option, services: map[string]*purista.Service{}, methods: map[string]*purista.Method{}, owners: map[string]*purista.Service{}}
	for _, s := range services {
		if s == nil {
			return nil, fmt.Errorf("%s: a service contract is nil: pass the generated <Service>_PuristaService values", option)
		}
		if s.Name == "" {
			return nil, fmt.Errorf("%s: a service contract has no name: pass the generated <Service>_PuristaService values", option)
		}
		if old, ok := c.services[s.Name]; ok {
			if old != s {
				return nil, fmt.Errorf("%s: two different contracts describe the service %s: pass one of them", option, s.Name)
			}
			continue
		}
		c.services[s.Name] = s
		for _, m := range s.Methods {
			c.methods[m.FullMethod] = m
			c.owners[m.FullMethod] = s
		}
	}
	return c, nil
}

// Service returns the contract of a service.
func (c *Contracts) Service(name string) (*purista.Service, bool) {
	if c == nil {
		return nil, false
	}
	s, ok := c.services[name]
	return s, ok
}

// Method returns the contracts of a full method and of its service.
func (c *Contracts) Method(fullMethod string) (*purista.Service, *purista.Method, bool) {
	if c == nil {
		return nil, nil, false
	}
	m, ok := c.methods[fullMethod]
	return c.owners[fullMethod], m, ok
}

// Services returns every contract, sorted by service name.
func (c *Contracts) Services() []*purista.Service {
	if c == nil {
		return nil
	}
	out := make([]*purista.Service, 0, len(c.services))
	for _, s := range c.services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Require returns the contract of the service a full method belongs to, or
// the FAILED_PRECONDITION error a client answers a call it has no contract
// for with: without it, the call would go to a guessed topic without its
// key and timeout.
func (c *Contracts) Require(fullMethod string) (*purista.Service, error) {
	svc, _, ok := SplitMethod(fullMethod)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "malformed method name %q: want /package.Service/Method", fullMethod)
	}
	s, ok := c.Service(svc)
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "call %s: this client has no contract for %s: pass its generated %s_PuristaService to %s",
			fullMethod, svc, shortName(svc), c.optionName())
	}
	return s, nil
}

// missing is the error of registering a service the server has no
// contract for.
func (c *Contracts) missing(service string) error {
	return fmt.Errorf("register service %s: the server has no contract for it: pass its generated %s_PuristaService to %s", service, shortName(service), c.optionName())
}

func (c *Contracts) optionName() string {
	if c == nil || c.option == "" {
		return "the transport's WithContracts option"
	}
	return c.option
}

func shortName(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '.' {
			return full[i+1:]
		}
	}
	return full
}

// MethodTimeout returns the timeout for a call made without a deadline: the
// contract's timeout for the method when it declares one, else def.
func (c *Contracts) MethodTimeout(fullMethod string, def time.Duration) time.Duration {
	if _, m, ok := c.Method(fullMethod); ok && m.Timeout > 0 {
		return m.Timeout
	}
	return def
}

// WithDefaultTimeout gives ctx the method's default deadline when it has none.
func (c *Contracts) WithDefaultTimeout(ctx context.Context, fullMethod string, def time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	if d := c.MethodTimeout(fullMethod, def); d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return ctx, func() {}
}
