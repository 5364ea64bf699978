package kafka

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
)

// ClientOption configures a ClientConn.
type ClientOption interface{ applyClient(*clientConfig) }

// ServerOption configures a Server.
type ServerOption interface{ applyServer(*serverConfig) }

// Option configures both a ClientConn and a Server.
type Option interface {
	ClientOption
	ServerOption
}

type clientOptionFunc func(*clientConfig)

func (f clientOptionFunc) applyClient(c *clientConfig) { f(c) }

type serverOptionFunc func(*serverConfig)

func (f serverOptionFunc) applyServer(c *serverConfig) { f(c) }

type commonOption func(*commonConfig)

func (f commonOption) applyClient(c *clientConfig) { f(&c.commonConfig) }
func (f commonOption) applyServer(c *serverConfig) { f(&c.commonConfig) }

type commonConfig struct {
	contracts      []*purista.Service
	tls            *tls.Config
	sasl           sasl.Mechanism
	saslUser       string // for error messages (authz.go)
	errs           []error
	clientID       string
	logger         *slog.Logger
	topicPrefix    string
	ensureTopics   bool
	partitions     int
	replication    int
	defaultTimeout time.Duration
	requiredAcks   int
	compression    Compression
	dialTimeout    time.Duration
	maxBatch       int
	// replyRetention is how long the reply store keeps the reply of an
	// idempotency key; 0 turns the store off (replystore.go).
	replyRetention time.Duration
	// tracerProvider and metrics: telemetry.go.
	tracerProvider trace.TracerProvider
	metrics        prometheus.Registerer
}

func defaultCommon() commonConfig {
	return commonConfig{
		logger:         slog.Default(),
		partitions:     3,
		replication:    -1,
		defaultTimeout: 30 * time.Second,
		requiredAcks:   -1,
		compression:    CompressionSnappy,
		dialTimeout:    10 * time.Second,
		maxBatch:       512,
		replyRetention: defaultReplyRetention,
	}
}

func (c *commonConfig) validate() error {
	if len(c.errs) > 0 {
		return c.errs[0]
	}
	if c.clientID != "" {
		if err := validTopicPart(c.clientID); err != nil {
			return fmt.Errorf("kafka: client id %q: %w", c.clientID, err)
		}
	}
	if c.topicPrefix != "" {
		if err := validTopicPart(c.topicPrefix); err != nil {
			return fmt.Errorf("kafka: topic prefix %q: %w", c.topicPrefix, err)
		}
	}
	if c.defaultTimeout <= 0 {
		return fmt.Errorf("kafka: default timeout %v must be positive", c.defaultTimeout)
	}
	if c.partitions <= 0 {
		return fmt.Errorf("kafka: default partitions %d must be at least 1", c.partitions)
	}
	if c.replyRetention < 0 || (c.replyRetention > 0 && c.replyRetention < minReplyRetention) {
		return fmt.Errorf("kafka: reply store retention %v: use 0 to turn the store off, or at least %v so that a retry finds the first reply", c.replyRetention, minReplyRetention)
	}
	return nil
}

// WithContracts hands a client or server the contracts of the services it
// calls or serves: the generated <Service>_PuristaService values, which
// carry request topics, partition keys, timeouts, idempotency and events. A
// server refuses to serve a service without one (Serve returns the error);
// a client fails a call to one with FAILED_PRECONDITION. Repeated options
// add up.
func WithContracts(services ...*purista.Service) Option {
	return commonOption(func(c *commonConfig) { c.contracts = append(c.contracts, services...) })
}

// WithTLS connects to the brokers over TLS.
func WithTLS(cfg *tls.Config) Option {
	return commonOption(func(c *commonConfig) { c.tls = cfg })
}

// WithSASLPlain authenticates with SASL/PLAIN (use it with WithTLS).
func WithSASLPlain(username, password string) Option {
	return commonOption(func(c *commonConfig) {
		c.sasl, c.saslUser = plain.Mechanism{Username: username, Password: password}, username
	})
}

// WithSASLScram authenticates with SASL/SCRAM. algorithm is "SCRAM-SHA-512"
// or "SCRAM-SHA-256".
func WithSASLScram(algorithm, username, password string) Option {
	return commonOption(func(c *commonConfig) {
		var alg scram.Algorithm
		switch algorithm {
		case "SCRAM-SHA-512":
			alg = scram.SHA512
		case "SCRAM-SHA-256":
			alg = scram.SHA256
		default:
			c.errs = append(c.errs, fmt.Errorf("kafka: SASL algorithm %q is not supported: use SCRAM-SHA-512 or SCRAM-SHA-256", algorithm))
			return
		}
		m, err := scram.Mechanism(alg, username, password)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("kafka: SASL %s: %w", algorithm, err))
			return
		}
		c.sasl, c.saslUser = m, username
	})
}

// WithClientID names this instance to the brokers. A client's reply topic is
// "purista.reply.<client id>", so the id must be unique among live clients;
// the default is "<hostname>-<pid>-<random>".
func WithClientID(id string) Option {
	return commonOption(func(c *commonConfig) { c.clientID = id })
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return commonOption(func(c *commonConfig) {
		if l != nil {
			c.logger = l
		}
	})
}

// WithTopicPrefix prefixes every topic and consumer group this transport
// uses, so several environments can share one cluster.
func WithTopicPrefix(prefix string) Option {
	return commonOption(func(c *commonConfig) { c.topicPrefix = prefix })
}

// WithEnsureTopics creates missing request topics at start: on a client for
// every service whose generated code is linked in, on a server for the
// services it serves. Partitions and replication come from the contract, or
// from the defaults given here (3 partitions, the broker's default
// replication) when the contract names none. Production clusters usually
// provision topics ahead with `purista topics ensure` instead.
func WithEnsureTopics(defaultPartitions, defaultReplication int) Option {
	return commonOption(func(c *commonConfig) {
		c.ensureTopics = true
		if defaultPartitions > 0 {
			c.partitions = defaultPartitions
		}
		if defaultReplication != 0 {
			c.replication = defaultReplication
		}
	})
}

// WithDefaultTimeout sets the deadline for calls without one whose contract
// declares no timeout (default 30 s). On a server it applies to requests that
// carry no deadline.
func WithDefaultTimeout(d time.Duration) Option {
	return commonOption(func(c *commonConfig) { c.defaultTimeout = d })
}

// WithRequiredAcks sets the acknowledgement produce requests wait for: -1
// (all in-sync replicas, the default) or 1 (the leader only).
func WithRequiredAcks(acks int) Option {
	return commonOption(func(c *commonConfig) {
		if acks != -1 && acks != 1 {
			c.errs = append(c.errs, fmt.Errorf("kafka: required acks %d is not supported: use -1 (all replicas) or 1 (leader)", acks))
			return
		}
		c.requiredAcks = acks
	})
}

// Compression is how the record batches a client or server writes are
// compressed. Every Kafka client reads all of them.
type Compression string

// The compressions WithCompression takes.
const (
	// CompressionSnappy is the default: at 64 calls in flight it took 10–13%
	// less CPU per call than no compression, on the embedded broker and on
	// Apache Kafka, for as fast or faster calls (docs/transport.md).
	CompressionSnappy Compression = "snappy"
	CompressionNone   Compression = "none"
	CompressionLZ4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
	CompressionGzip   Compression = "gzip"
)

// codec is c as kafka-go's codec; nil writes batches uncompressed.
func (c Compression) codec() kafka.CompressionCodec {
	switch c {
	case CompressionSnappy:
		return kafka.Snappy.Codec()
	case CompressionLZ4:
		return kafka.Lz4.Codec()
	case CompressionZstd:
		return kafka.Zstd.Codec()
	case CompressionGzip:
		return kafka.Gzip.Codec()
	}
	return nil
}

// WithCompression sets how written record batches are compressed:
// CompressionSnappy (the default), CompressionLZ4, CompressionZstd,
// CompressionGzip or CompressionNone.
func WithCompression(c Compression) Option {
	return commonOption(func(cfg *commonConfig) {
		switch c {
		case CompressionSnappy, CompressionNone, CompressionLZ4, CompressionZstd, CompressionGzip:
			cfg.compression = c
		default:
			cfg.errs = append(cfg.errs, fmt.Errorf("kafka: compression %q is not supported: use snappy, lz4, zstd, gzip or none", c))
		}
	})
}

// WithUnaryClientInterceptors adds interceptors around every call, first outermost.
func WithUnaryClientInterceptors(i ...grpc.UnaryClientInterceptor) ClientOption {
	return clientOptionFunc(func(c *clientConfig) { c.interceptors = append(c.interceptors, i...) })
}

// WithUnaryServerInterceptors adds interceptors around every handler, first outermost.
func WithUnaryServerInterceptors(i ...grpc.UnaryServerInterceptor) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.interceptors = append(c.interceptors, i...) })
}

// WithMaxConcurrentRequests bounds how many requests a server handles at
// once (default 512). Further requests wait in Kafka.
func WithMaxConcurrentRequests(n int) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.maxConcurrency = n })
}

// WithDedupWindow sets how many replies of idempotent methods a server keeps
// and for how long (default 10 000 for 10 minutes); size 0 disables it.
func WithDedupWindow(size int, ttl time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.dedupSize, c.dedupTTL = size, ttl })
}

// WithGroupTimings sets the consumer group's heartbeat interval and session
// timeout (defaults 500 ms and 6 s). A stopped instance leaves the group at
// once; a crashed one is noticed after the session timeout, and its
// partitions' requests wait until then. Brokers reject session timeouts
// below group.min.session.timeout.ms (6 s by default).
func WithGroupTimings(heartbeat, session time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.heartbeat, c.session = heartbeat, session })
}

// WithDeadLetterTopic writes records that cannot be answered (no request id
// or reply topic, not a purista request) to topic, with the reason in the
// "purista-dead-letter-reason" header. Without it such records are logged,
// counted and skipped.
func WithDeadLetterTopic(topic string) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.deadLetterTopic = topic })
}

// WithReplyStore sets how long a server keeps the reply of each
// idempotency key in the service's reply store topic
// "<prefix>purista.replies.<service>" (default 24 h, at least a minute):
// within it a call repeated with the same key, on any instance, after a
// restart or a rebalance, gets the stored reply and the handler does not
// run again. 0 turns the store off; only the in-memory dedup window of the
// instance then recognises a repeated key, and only for methods the
// contract marks idempotent — while clients still retry keyed calls
// (WithRetry), so turn it off only where calls carry no keys or their
// handlers are idempotent themselves. Given to EnsureTopics (and the
// CLI), it sets the topic's retention.ms.
func WithReplyStore(retention time.Duration) Option {
	return commonOption(func(c *commonConfig) { c.replyRetention = retention })
}

// WithRetry sets how a client retries a call that carries an idempotency
// key (the caller's, or the one the client makes for a method the contract
// marks idempotent) after UNAVAILABLE or a request write whose outcome is
// unknown: at most attempts tries in all, waiting first, then twice as
// long each time up to max, while the call's deadline leaves time (default
// 5 tries, 50 ms, 1 s). A retry reuses the call's key, so the server runs
// the handler once. Calls without a key are never retried: running them
// twice could repeat an effect. attempts 1 turns retries off.
//
// A method whose contract sets (purista.v1.method).retry is retried as the
// contract says: its owner knows what the method can bear. WithRetry is
// the policy of the other methods.
func WithRetry(attempts int, first, max time.Duration) ClientOption {
	return clientOptionFunc(func(c *clientConfig) {
		p, err := dispatch.ClientRetryPolicy("kafka.WithRetry", attempts, first, max)
		if err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.retry = p
	})
}
