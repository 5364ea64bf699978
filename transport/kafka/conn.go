package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/internal/dispatch"
	"github.com/purista-go/purista/internal/telemetry"
)

// topicChar reports whether Kafka allows c in a topic name: [a-zA-Z0-9._-].
func topicChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validTopicPart checks a client id or topic prefix, and the reply topic
// of every request a server takes: a loop, not a regular expression, as it
// runs once per call.
func validTopicPart(s string) error {
	if s == "" || strings.IndexFunc(s, func(c rune) bool { return !topicChar(c) }) >= 0 {
		return errors.New("use only the characters Kafka allows in topic names: [a-zA-Z0-9._-]")
	}
	return nil
}

func validateBrokers(brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("kafka: no broker addresses: pass at least one host:port, e.g. 127.0.0.1:9092")
	}
	for _, b := range brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return fmt.Errorf("kafka: broker address %q is not host:port (e.g. 127.0.0.1:9092)", b)
		}
	}
	return nil
}

// base is what clients and servers share: the kafka-go client, the
// producer and topic naming.
type base struct {
	cfg       commonConfig
	contracts *dispatch.Contracts // WithContracts
	brokers   []string
	kc        *kafka.Client
	dialer    *kafka.Dialer
	prod      *producer
	tracer    telemetry.Tracer
	metrics   *telemetry.Metrics // nil without WithMetrics
	// reqTopics and groups are the request topic and consumer group of
	// every service of the contracts, named once rather than per record.
	reqTopics, groups map[string]string
}

func newBase(brokers []string, cfg commonConfig) (*base, error) {
	if err := validateBrokers(brokers); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	contracts, err := dispatch.NewContracts("kafka.WithContracts", cfg.contracts)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if cfg.clientID == "" {
		cfg.clientID = defaultClientID()
	}
	kc := newKafkaClient(brokers, cfg)
	b := &base{
		contracts: contracts,
		cfg:       cfg,
		brokers:   append([]string(nil), brokers...),
		kc:        kc,
		dialer:    &kafka.Dialer{ClientID: cfg.clientID, Timeout: cfg.dialTimeout, TLS: cfg.tls, SASLMechanism: cfg.sasl, DualStack: true},
	}
	if err := b.initTelemetry(); err != nil {
		return nil, fmt.Errorf("kafka: metrics: %w", err)
	}
	b.prod = newProducer(b.dialer, b.brokers, cfg.requiredAcks, cfg.maxBatch, cfg.compression.codec(), cfg.logger)
	b.reqTopics, b.groups = map[string]string{}, map[string]string{}
	for _, s := range contracts.Services() {
		b.reqTopics[s.Name] = b.nameRequestTopic(s.Name)
		b.groups[s.Name] = b.cfg.topicPrefix + RequestGroup(s.Name)
	}
	return b, nil
}

// newKafkaClient returns a kafka-go client with a transport of its own.
// The transport caches cluster metadata for 30 s and refreshes it only on
// that timer, not when a broker answers "not leader": code that must follow
// a moved leader at once asks for a new client (replyStore.renew).
func newKafkaClient(brokers []string, cfg commonConfig) *kafka.Client {
	tr := &kafka.Transport{
		DialTimeout: cfg.dialTimeout,
		ClientID:    cfg.clientID,
		TLS:         cfg.tls,
		SASL:        cfg.sasl,
		MetadataTTL: 30 * time.Second,
	}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 30 * time.Second}
}

// ping checks that a broker answers, within the dial timeout per broker.
func (b *base) ping(ctx context.Context) error { return b.pingWithin(ctx, b.cfg.dialTimeout) }

// requestTopic returns the request topic of a service: its contract's, or
// the default name (a client refuses calls without a contract before it
// gets here, a server services without one).
func (b *base) requestTopic(service string) string {
	if t, ok := b.reqTopics[service]; ok {
		return t
	}
	return b.nameRequestTopic(service)
}

func (b *base) nameRequestTopic(service string) string {
	if s, ok := b.contracts.Service(service); ok && s.RequestTopic != "" {
		return b.cfg.topicPrefix + s.RequestTopic
	}
	return b.cfg.topicPrefix + purista.DefaultRequestTopic(service)
}

func (b *base) groupID(service string) string {
	if g, ok := b.groups[service]; ok {
		return g
	}
	return b.cfg.topicPrefix + RequestGroup(service)
}

func (b *base) close() { b.prod.close() }

func defaultClientID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if topicChar(r) {
			return r
		}
		return '-'
	}, host)
	if host == "" {
		host = "purista"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(4))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// unavailable wraps a broker error as an UNAVAILABLE status.
func unavailable(format string, args ...any) error {
	return status.Errorf(codes.Unavailable, format, args...)
}

func timeAfter(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }
