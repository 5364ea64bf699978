package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// SASL mechanisms accepted by [WithSASL].
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// DefaultGroupMinSessionTimeout is the smallest consumer-group session
// timeout the broker accepts unless [WithGroupSessionTimeouts] says otherwise.
const DefaultGroupMinSessionTimeout = time.Second

// Option configures [Start].
type Option func(*config)

type saslUser struct{ mechanism, user, password string }

type config struct {
	port       int
	dataDir    string
	logger     *slog.Logger
	sasl       []saslUser
	tls        *tls.Config
	minSession time.Duration
	maxSession time.Duration
	clusterID  string
}

// WithPort makes the broker listen on 127.0.0.1:port. Port 0, the default,
// picks a free port; read it back with [Broker.Addrs].
func WithPort(port int) Option {
	return func(c *config) { c.port = port }
}

// WithDataDir persists the broker's state (topics, records, committed
// offsets, SASL users) in dir, creating it if needed. A broker started later
// with the same directory continues where the previous one stopped. Without
// this option all state lives in memory and disappears on Close.
func WithDataDir(dir string) Option {
	return func(c *config) { c.dataDir = dir }
}

// WithLogger sends the broker's own log lines to l. Levels map one to one:
// broker errors, warnings (for example a request for a topic that does not
// exist), informational messages (group membership changes) and debug
// messages become slog records at the matching level. The default discards
// everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithSASL requires SASL authentication and adds a user allowed to do
// everything. mechanism is [SASLPlain], [SASLScramSHA256] or
// [SASLScramSHA512]. Give the option several times to add several users.
func WithSASL(mechanism, user, password string) Option {
	return func(c *config) { c.sasl = append(c.sasl, saslUser{mechanism, user, password}) }
}

// WithTLS makes the listener speak TLS with the given server configuration
// (it needs at least one certificate).
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) { c.tls = cfg }
}

// WithGroupSessionTimeouts bounds the session timeouts consumer-group members
// may ask for. The defaults are [DefaultGroupMinSessionTimeout] and 5 minutes.
func WithGroupSessionTimeouts(minimum, maximum time.Duration) Option {
	return func(c *config) { c.minSession, c.maxSession = minimum, maximum }
}

// WithClusterID sets the cluster id reported in metadata responses
// (default "purista-embedded").
func WithClusterID(id string) Option {
	return func(c *config) { c.clusterID = id }
}

// Broker is a running embedded broker. Its methods are safe for concurrent use.
type Broker struct {
	cluster   *kfake.Cluster
	addrs     []string
	closeOnce sync.Once
}

// Start starts a broker and returns once it accepts connections.
func Start(opts ...Option) (*Broker, error) {
	cfg := config{
		minSession: DefaultGroupMinSessionTimeout,
		maxSession: 5 * time.Minute,
		clusterID:  "purista-embedded",
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.port < 0 || cfg.port > 65535 {
		return nil, fmt.Errorf("embedded: port %d out of range", cfg.port)
	}
	if cfg.minSession <= 0 || cfg.maxSession < cfg.minSession {
		return nil, fmt.Errorf("embedded: invalid group session timeouts [%v, %v]", cfg.minSession, cfg.maxSession)
	}
	if cfg.tls != nil && len(cfg.tls.Certificates) == 0 && cfg.tls.GetCertificate == nil && cfg.tls.GetConfigForClient == nil {
		return nil, errors.New("embedded: WithTLS needs a tls.Config with a certificate")
	}

	kopts := []kfake.Opt{
		// One node: Ports implies the number of brokers.
		kfake.Ports(cfg.port),
		kfake.ClusterID(cfg.clusterID),
		kfake.GroupMinSessionTimeout(cfg.minSession),
		kfake.GroupMaxSessionTimeout(cfg.maxSession),
		// Auto-creation stays off: kfake only creates topics on metadata
		// requests when AllowAutoTopicCreation is given, and we never give it.
	}
	if cfg.logger != nil {
		kopts = append(kopts, kfake.WithLogger(slogAdapter{cfg.logger}))
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	if cfg.tls != nil {
		kopts = append(kopts, kfake.TLS(cfg.tls))
	}
	if len(cfg.sasl) > 0 {
		kopts = append(kopts, kfake.EnableSASL())
		for _, u := range cfg.sasl {
			switch u.mechanism {
			case SASLPlain, SASLScramSHA256, SASLScramSHA512:
			default:
				return nil, fmt.Errorf("embedded: unknown SASL mechanism %q (want %s, %s or %s)", u.mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
			}
			if u.user == "" {
				return nil, errors.New("embedded: WithSASL needs a user name")
			}
			kopts = append(kopts, kfake.Superuser(u.mechanism, u.user, u.password))
		}
	}

	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("embedded: start broker: %w", err)
	}
	return &Broker{cluster: c, addrs: c.ListenAddrs()}, nil
}

// Addrs returns the broker's listen addresses ("127.0.0.1:port"), suitable as
// bootstrap servers. The slice is a copy.
func (b *Broker) Addrs() []string {
	return append([]string(nil), b.addrs...)
}

// Close stops the broker. With [WithDataDir] it first writes its state to
// disk. Calling Close more than once is harmless.
func (b *Broker) Close() {
	b.closeOnce.Do(b.cluster.Close)
}

// Kfake returns the underlying kfake cluster, for tests that inject faults
// (kfake's Control functions) or move partitions. Everything else should go
// through the Kafka protocol like any other client.
func (b *Broker) Kfake() *kfake.Cluster { return b.cluster }

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo:
		sl = slog.LevelInfo
	case kfake.LogLevelDebug:
		sl = slog.LevelDebug
	default:
		return
	}
	ctx := context.Background()
	if !a.l.Enabled(ctx, sl) {
		return
	}
	a.l.Log(ctx, sl, fmt.Sprintf(format, args...), "component", "embedded-kafka")
}
