package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
)

// KeyCallOption is a call option that names a call's idempotency key; a
// transport's own option (kafka.IdempotencyKey) returns one.
type KeyCallOption struct {
	grpc.EmptyCallOption
	Key string
}

// CallKey is the idempotency key of a call: the call option's, else the
// outgoing metadata's, else — for a method the contract marks idempotent —
// a new one, made once per logical call so that every retry of the call
// carries it. "" means the call has none.
func CallKey(opts []grpc.CallOption, md metadata.MD, m *purista.Method) string {
	for _, o := range opts {
		if k, ok := o.(KeyCallOption); ok && k.Key != "" {
			return k.Key
		}
	}
	if k := IdempotencyKey(md); k != "" {
		return k
	}
	if m != nil && m.Idempotent {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	return ""
}

// ClientRetryPolicy checks a client's retry option (kafka.WithRetry,
// inproc.WithRetry): at least one try and a first wait above zero, as a
// retry at once would only meet the same failure.
func ClientRetryPolicy(option string, attempts int, first, max time.Duration) (*purista.RetryPolicy, error) {
	p := purista.RetryPolicy{MaxAttempts: attempts, InitialBackoff: first, MaxBackoff: max}
	if err := p.Validate(); err != nil || first <= 0 {
		return nil, fmt.Errorf("%s(%d, %v, %v): a retry policy wants at least 1 attempt and 0 < first backoff <= max backoff", option, attempts, first, max)
	}
	return &p, nil
}

// RetryPolicy is how a keyed call of m is retried: as its contract says,
// else as the client's option says (nil: not set), else the default.
func RetryPolicy(m *purista.Method, client *purista.RetryPolicy) purista.RetryPolicy {
	switch {
	case m != nil && m.Retry != nil:
		return *m.Retry
	case client != nil:
		return *client
	}
	return purista.DefaultRetryPolicy()
}

// RetryKeyed makes a call by running try, and when the call is keyed runs
// it again after UNAVAILABLE as the policy allows, while ctx's deadline
// leaves time for the wait and stop is open; retried is called before each
// retry. A keyed call may run again safely: a server answers a key it ran
// with the stored reply. Unkeyed calls are tried once.
func RetryKeyed(ctx context.Context, keyed bool, p purista.RetryPolicy, stop <-chan struct{}, try func() error, retried func()) error {
	for n := 1; ; n++ {
		err := try()
		if !keyed || n >= p.MaxAttempts || status.Code(err) != codes.Unavailable {
			return err
		}
		wait := p.Backoff(n)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-stop:
			t.Stop()
			return err
		}
		if retried != nil {
			retried()
		}
	}
}
