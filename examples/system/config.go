package system

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/purista-go/purista/internal/brokerauth"
	"github.com/purista-go/purista/transport/kafka"
)

// Config is what a component's main reads from its flags and environment.
// Every flag has an environment variable; a flag given on the command line
// wins over the variable, the variable over the default.
type Config struct {
	Brokers      string // -brokers, PURISTA_BROKERS
	TopicPrefix  string // -topic-prefix, PURISTA_TOPIC_PREFIX
	EnsureTopics bool   // -ensure-topics, PURISTA_ENSURE_TOPICS
	LogLevel     string // -log-level, PURISTA_LOG_LEVEL
	LogFormat    string // -log-format, PURISTA_LOG_FORMAT
	HTTPAddr     string // -http, PURISTA_HTTP_ADDR (gateway only)
	OpsAddr      string // -ops, PURISTA_OPS_ADDR (services only)
	Token        string // -token, PURISTA_GATEWAY_TOKEN (gateway only)
	// JWKSURL, JWTIssuer and JWTAudience turn on JWT authentication at the
	// gateway (-jwks-url, -jwt-issuer, -jwt-audience; PURISTA_GATEWAY_JWKS_URL, ...).
	JWKSURL, JWTIssuer, JWTAudience string
	// ClientIDPrefix starts the instance's Kafka client id (-client-id-prefix,
	// PURISTA_CLIENT_ID_PREFIX): on a cluster with ACLs, the prefix its
	// principal's reply topics are granted under (docs/security.md).
	ClientIDPrefix string
	// Auth is TLS and SASL (-kafka-tls*, -kafka-sasl-*, PURISTA_KAFKA_*).
	Auth brokerauth.Settings

	envErr []string
}

// DefaultBrokers is where the components look for Kafka by default: the
// embedded broker of `purista dev` listens there.
const DefaultBrokers = "127.0.0.1:9092"

// RegisterFlags defines the flags on fs, with defaults from the
// environment. gateway adds the gateway's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet, gateway bool) {
	fs.StringVar(&c.Brokers, "brokers", c.env("PURISTA_BROKERS", DefaultBrokers), "Kafka bootstrap brokers, comma-separated (env PURISTA_BROKERS)")
	fs.StringVar(&c.TopicPrefix, "topic-prefix", c.env("PURISTA_TOPIC_PREFIX", ""), "prefix of every topic and consumer group, to share a cluster between environments (env PURISTA_TOPIC_PREFIX)")
	fs.BoolVar(&c.EnsureTopics, "ensure-topics", c.envBool("PURISTA_ENSURE_TOPICS", false), "create missing request topics at start; production provisions them with `purista topics ensure` (env PURISTA_ENSURE_TOPICS)")
	fs.StringVar(&c.LogLevel, "log-level", c.env("PURISTA_LOG_LEVEL", "info"), "debug, info, warn or error (env PURISTA_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", c.env("PURISTA_LOG_FORMAT", "text"), "text, json, or dev (short lines for a terminal) (env PURISTA_LOG_FORMAT)")
	fs.StringVar(&c.ClientIDPrefix, "client-id-prefix", c.env("PURISTA_CLIENT_ID_PREFIX", ""), "start of this instance's Kafka client id, followed by the host name and a random suffix; on a cluster with ACLs, the principal's prefix, e.g. orders- (env PURISTA_CLIENT_ID_PREFIX)")
	c.Auth.Register(fs)
	if gateway {
		fs.StringVar(&c.HTTPAddr, "http", c.env("PURISTA_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (env PURISTA_HTTP_ADDR)")
		fs.StringVar(&c.Token, "token", c.env("PURISTA_GATEWAY_TOKEN", ""), "bearer token that routes not marked public require; empty: no authentication (env PURISTA_GATEWAY_TOKEN)")
		fs.StringVar(&c.JWKSURL, "jwks-url", c.env("PURISTA_GATEWAY_JWKS_URL", ""), "URL of the JSON Web Key Set of the issuer whose JWTs routes not marked public require, instead of -token; the token's sub reaches the services as x-user-id (env PURISTA_GATEWAY_JWKS_URL)")
		fs.StringVar(&c.JWTIssuer, "jwt-issuer", c.env("PURISTA_GATEWAY_JWT_ISSUER", ""), "the iss a JWT must carry, with -jwks-url (env PURISTA_GATEWAY_JWT_ISSUER)")
		fs.StringVar(&c.JWTAudience, "jwt-audience", c.env("PURISTA_GATEWAY_JWT_AUDIENCE", ""), "the aud a JWT must carry, with -jwks-url (env PURISTA_GATEWAY_JWT_AUDIENCE)")
	} else {
		fs.StringVar(&c.OpsAddr, "ops", c.env("PURISTA_OPS_ADDR", ""), "address to serve /healthz, /readyz and /metrics on, e.g. :9090 for Kubernetes probes; empty: none (env PURISTA_OPS_ADDR)")
	}
}

func (c *Config) env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func (c *Config) envBool(name string, def bool) bool {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		c.envErr = append(c.envErr, fmt.Sprintf("%s=%q is not a boolean: use true or false", name, v))
		return def
	}
	return b
}

// Validate reports bad values, naming the flag and variable to fix.
func (c *Config) Validate() error {
	var errs []string
	errs = append(errs, c.envErr...)
	if len(c.brokerList()) == 0 {
		errs = append(errs, "no brokers: set -brokers or PURISTA_BROKERS to host:port[,host:port...]")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err.Error())
	}
	if c.LogFormat != "text" && c.LogFormat != "json" && c.LogFormat != "dev" {
		errs = append(errs, fmt.Sprintf("-log-format %q: use text, json or dev", c.LogFormat))
	}
	if c.ClientIDPrefix != "" && !clientIDRE.MatchString(c.ClientIDPrefix) {
		errs = append(errs, fmt.Sprintf("-client-id-prefix %q: use letters, digits, '.', '_' and '-' only", c.ClientIDPrefix))
	}
	if c.Token != "" && c.JWKSURL != "" {
		errs = append(errs, "-token and -jwks-url both set: the gateway authenticates with one of them")
	}
	if c.JWKSURL == "" && (c.JWTIssuer != "" || c.JWTAudience != "") {
		errs = append(errs, "-jwt-issuer and -jwt-audience need -jwks-url (PURISTA_GATEWAY_JWKS_URL)")
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err.Error())
	} else if _, err := c.Auth.TLSConfig(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (c *Config) brokerList() []string {
	var bs []string
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			bs = append(bs, b)
		}
	}
	return bs
}

// Kafka returns the transport settings.
func (c *Config) Kafka() Kafka {
	k := Kafka{Brokers: c.brokerList()}
	auth, _ := c.Auth.KafkaOptions() // checked by Validate
	k.Options = append(k.Options, auth...)
	if c.ClientIDPrefix != "" {
		k.Options = append(k.Options, kafka.WithClientID(c.ClientIDPrefix+instanceName()))
	}
	if c.TopicPrefix != "" {
		k.Options = append(k.Options, kafka.WithTopicPrefix(c.TopicPrefix))
	}
	if c.EnsureTopics {
		k.Options = append(k.Options, kafka.WithEnsureTopics(0, 0))
	}
	return k
}

// Logger returns the component's logger, writing to w.
func (c *Config) Logger(w io.Writer, component string) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch c.LogFormat {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "dev":
		h = NewDevHandler(w, level)
	default:
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("component", component)
}

var clientIDRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// instanceName is the host name (a pod's name) and a random suffix, in the
// characters a topic name allows.
func instanceName() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 128 && clientIDRE.MatchString(string(r)) {
			return r
		}
		return '-'
	}, host)
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("-log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}
