package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/purista-go/purista/internal/brokerauth"
	"github.com/purista-go/purista/transport/kafka"
)

// defaultBrokers is where the CLI looks for Kafka by default: the embedded
// broker of `purista dev` listens there, and the services purista init
// scaffolds connect there unless PURISTA_BROKERS says otherwise.
const defaultBrokers = "127.0.0.1:9092"

// kafkaFlags are the connection flags of the commands that talk to a
// cluster.
type kafkaFlags struct {
	brokers string
	prefix  string
	timeout time.Duration
	auth    brokerauth.Settings
	authOpt []kafka.Option // from auth, set by reach
}

func (k *kafkaFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&k.brokers, "brokers", envOr("PURISTA_BROKERS", defaultBrokers),
		"Kafka bootstrap brokers, comma-separated (env PURISTA_BROKERS); `purista dev` listens on "+defaultBrokers)
	fs.StringVar(&k.prefix, "topic-prefix", envOr("PURISTA_TOPIC_PREFIX", ""),
		"prefix of every topic, as the services were given (env PURISTA_TOPIC_PREFIX)")
	fs.DurationVar(&k.timeout, "connect-timeout", 5*time.Second, "how long to try to reach the brokers")
	k.auth.Register(fs)
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func (k *kafkaFlags) list() []string {
	var out []string
	for _, b := range strings.Split(k.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (k *kafkaFlags) options() []kafka.Option {
	opts := append([]kafka.Option(nil), k.authOpt...)
	if k.prefix == "" {
		return opts
	}
	return append(opts, kafka.WithTopicPrefix(k.prefix))
}

// reach checks that at least one broker accepts TCP connections, so that
// the common mistake — nothing running there — gets an answer in a moment
// that says what to do, instead of a client library's retry loop.
func (k *kafkaFlags) reach(ctx context.Context) ([]string, error) {
	brokers := k.list()
	if len(brokers) == 0 {
		return nil, usageError{errors.New("no brokers: pass --brokers host:port or set PURISTA_BROKERS")}
	}
	if err := k.auth.Validate(); err != nil {
		return nil, usageError{err}
	}
	opts, err := k.auth.KafkaOptions()
	if err != nil {
		return nil, usageError{err}
	}
	k.authOpt = opts
	var errs []string
	for _, b := range brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, usageError{fmt.Errorf("broker address %q: want host:port", b)}
		}
		d := net.Dialer{Timeout: k.timeout}
		c, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_ = c.Close()
			return brokers, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("cannot reach a Kafka broker at %s (%s).\n"+
		"Start your system with `purista dev` (its embedded broker listens on %s), "+
		"or point --brokers or PURISTA_BROKERS at a running cluster",
		strings.Join(brokers, ","), strings.Join(errs, "; "), defaultBrokers)
}
