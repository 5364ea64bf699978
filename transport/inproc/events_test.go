package inproc_test

import (
	"log/slog"
	"testing"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/conformance/events"
	"github.com/purista-go/purista/transport/inproc"
)

type eventEnv struct{ *env }

func (e eventEnv) EventServer(_ testing.TB, o events.Options) conformance.Server {
	opts := append(options(o.Options), inproc.WithLogger(slog.New(slog.DiscardHandler)))
	if o.MaxAttempts > 0 {
		opts = append(opts, inproc.WithEventRetry(o.MaxAttempts, o.FirstBackoff, o.MaxBackoff))
	}
	return server{e.ch.NewServer(opts...)}
}

func (e eventEnv) Publisher(testing.TB) purista.Publisher {
	return e.ch.NewClient(options(conformance.Options{})...)
}

// AwaitSubscribers has nothing to wait for: registering is subscribing.
func (e eventEnv) AwaitSubscribers(testing.TB, string, string, int) {}

func (e eventEnv) DeadLetters(_ testing.TB, service string) []events.DeadLetter {
	var out []events.DeadLetter
	for _, l := range e.ch.DeadLetters(service) {
		out = append(out, events.DeadLetter{Subscriber: l.Subscriber, EventID: l.EventID, Attempts: l.Attempts, Code: l.Status.Code(), Message: l.Status.Message(), Raw: l})
	}
	return out
}

func (e eventEnv) Redrive(t testing.TB, _ string, letters []events.DeadLetter) int {
	raw := make([]inproc.DeadLetter, len(letters))
	for i, l := range letters {
		raw[i] = l.Raw.(inproc.DeadLetter)
	}
	n, err := e.ch.Redrive(raw...)
	if err != nil {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	return n
}

func TestEvents(t *testing.T) {
	events.Run(t, func(t testing.TB) events.Env {
		ch := inproc.New()
		t.Cleanup(func() { _ = ch.Close() })
		return eventEnv{&env{ch: ch}}
	})
}
