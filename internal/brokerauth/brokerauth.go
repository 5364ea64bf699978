// Package brokerauth is how purista's commands and example binaries are
// told to reach a secured Kafka cluster: TLS (a CA to trust, optionally a
// client certificate) and SASL (PLAIN or SCRAM), from flags and
// environment variables, turned into transport options and franz-go
// client options. Passwords come from an environment variable or a file,
// never from the command line, where other users of the machine see them.
package brokerauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/purista-go/purista/transport/kafka"
)

// Environment variables, one per flag.
const (
	EnvTLS          = "PURISTA_KAFKA_TLS"
	EnvCA           = "PURISTA_KAFKA_TLS_CA"
	EnvCert         = "PURISTA_KAFKA_TLS_CERT"
	EnvKey          = "PURISTA_KAFKA_TLS_KEY"
	EnvMechanism    = "PURISTA_KAFKA_SASL_MECHANISM"
	EnvUsername     = "PURISTA_KAFKA_SASL_USERNAME"
	EnvPassword     = "PURISTA_KAFKA_SASL_PASSWORD"
	EnvPasswordFile = "PURISTA_KAFKA_SASL_PASSWORD_FILE"
)

// Settings are the security settings of a connection to the brokers.
type Settings struct {
	TLS          bool
	CAFile       string // PEM CA certificates to trust instead of the system's
	CertFile     string // PEM client certificate (mutual TLS), with KeyFile
	KeyFile      string
	Mechanism    string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; "" for none
	Username     string
	Password     string // from EnvPassword only
	PasswordFile string

	errs []string
}

// FlagSet is what flag.FlagSet and pflag.FlagSet have in common.
type FlagSet interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
}

// Register defines the flags on fs, with defaults from the environment.
func (s *Settings) Register(fs FlagSet) {
	tlsDefault := false
	if v, ok := os.LookupEnv(EnvTLS); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s=%q is not a boolean: use true or false", EnvTLS, v))
		}
		tlsDefault = b
	}
	fs.BoolVar(&s.TLS, "kafka-tls", tlsDefault, "connect to the brokers over TLS (implied by -kafka-tls-ca and -kafka-tls-cert) (env "+EnvTLS+")")
	fs.StringVar(&s.CAFile, "kafka-tls-ca", os.Getenv(EnvCA), "PEM file of the CA certificates that signed the brokers' certificates; default: the system's (env "+EnvCA+")")
	fs.StringVar(&s.CertFile, "kafka-tls-cert", os.Getenv(EnvCert), "PEM client certificate for mutual TLS, with -kafka-tls-key (env "+EnvCert+")")
	fs.StringVar(&s.KeyFile, "kafka-tls-key", os.Getenv(EnvKey), "PEM private key of -kafka-tls-cert (env "+EnvKey+")")
	fs.StringVar(&s.Mechanism, "kafka-sasl-mechanism", os.Getenv(EnvMechanism), "SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN; empty: no SASL (env "+EnvMechanism+")")
	fs.StringVar(&s.Username, "kafka-sasl-username", os.Getenv(EnvUsername), "SASL user name (env "+EnvUsername+")")
	fs.StringVar(&s.PasswordFile, "kafka-sasl-password-file", os.Getenv(EnvPasswordFile), "file holding the SASL password (a mounted Secret); or set "+EnvPassword+" (env "+EnvPasswordFile+")")
	s.Password = os.Getenv(EnvPassword)
}

// Validate reads the password file and reports every bad setting, naming
// the flag and variable to fix.
func (s *Settings) Validate() error {
	errs := append([]string(nil), s.errs...)
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, "-kafka-tls-cert and -kafka-tls-key go together: give both for mutual TLS, or neither")
	}
	switch strings.ToUpper(s.Mechanism) {
	case "":
		if s.Username != "" || s.PasswordFile != "" || s.Password != "" {
			errs = append(errs, "a SASL user name or password is set but no mechanism: set -kafka-sasl-mechanism ("+EnvMechanism+") to SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN")
		}
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		s.Mechanism = strings.ToUpper(s.Mechanism)
		if s.Username == "" {
			errs = append(errs, "SASL "+s.Mechanism+" needs a user name: set -kafka-sasl-username ("+EnvUsername+")")
		}
		if s.PasswordFile != "" {
			b, err := os.ReadFile(s.PasswordFile)
			if err != nil {
				errs = append(errs, fmt.Sprintf("-kafka-sasl-password-file: %v", err))
			} else {
				s.Password = strings.TrimRight(string(b), "\r\n")
			}
		}
		if s.Password == "" && len(errs) == 0 {
			errs = append(errs, "SASL "+s.Mechanism+" needs a password: set "+EnvPassword+" or -kafka-sasl-password-file ("+EnvPasswordFile+")")
		}
		if s.Mechanism == "PLAIN" && !s.tls() {
			errs = append(errs, "SASL PLAIN without TLS sends the password in clear text: add -kafka-tls ("+EnvTLS+"=true)")
		}
	default:
		errs = append(errs, fmt.Sprintf("-kafka-sasl-mechanism %q: use SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", s.Mechanism))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func (s *Settings) tls() bool { return s.TLS || s.CAFile != "" || s.CertFile != "" }

// TLSConfig returns the TLS configuration, or nil without TLS.
func (s *Settings) TLSConfig() (*tls.Config, error) {
	if !s.tls() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		b, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("-kafka-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("-kafka-tls-ca %s: no PEM certificate in it", s.CAFile)
		}
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("-kafka-tls-cert/-kafka-tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// KafkaOptions returns the transport options (after Validate).
func (s *Settings) KafkaOptions() ([]kafka.Option, error) {
	cfg, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	var opts []kafka.Option
	if cfg != nil {
		opts = append(opts, kafka.WithTLS(cfg))
	}
	switch s.Mechanism {
	case "PLAIN":
		opts = append(opts, kafka.WithSASLPlain(s.Username, s.Password))
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		opts = append(opts, kafka.WithSASLScram(s.Mechanism, s.Username, s.Password))
	}
	return opts, nil
}

// KgoOptions returns franz-go client options (after Validate), for the
// admin API.
func (s *Settings) KgoOptions() ([]kgo.Opt, error) {
	cfg, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if cfg != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	switch s.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}
