package brokerauth_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/purista-go/purista/internal/brokerauth"
)

func parse(t *testing.T, args ...string) (*brokerauth.Settings, error) {
	t.Helper()
	var s brokerauth.Settings
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	s.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &s, s.Validate()
}

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err := parse(t, "-kafka-sasl-mechanism", "scram-sha-512", "-kafka-sasl-username", "orders", "-kafka-sasl-password-file", pw, "-kafka-tls")
	if err != nil {
		t.Fatal(err)
	}
	if s.Password != "s3cret" || s.Mechanism != "SCRAM-SHA-512" {
		t.Errorf("password %q mechanism %q: want the file's line without its newline, and the mechanism in upper case", s.Password, s.Mechanism)
	}
	if opts, err := s.KafkaOptions(); err != nil || len(opts) != 2 {
		t.Errorf("KafkaOptions = %d options, %v; want TLS and SASL", len(opts), err)
	}
	if opts, err := s.KgoOptions(); err != nil || len(opts) != 2 {
		t.Errorf("KgoOptions = %d options, %v; want TLS and SASL", len(opts), err)
	}

	t.Setenv(brokerauth.EnvPassword, "from-env")
	t.Setenv(brokerauth.EnvUsername, "gateway")
	t.Setenv(brokerauth.EnvMechanism, "SCRAM-SHA-256")
	if s, err := parse(t); err != nil || s.Password != "from-env" || s.Username != "gateway" {
		t.Errorf("from the environment: %+v, %v", s, err)
	}
	t.Setenv(brokerauth.EnvPassword, "")
	t.Setenv(brokerauth.EnvUsername, "")
	t.Setenv(brokerauth.EnvMechanism, "")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-kafka-sasl-mechanism", "MD5"}, "use SCRAM-SHA-512"},
		{[]string{"-kafka-sasl-mechanism", "SCRAM-SHA-512", "-kafka-sasl-password-file", pw}, "needs a user name"},
		{[]string{"-kafka-sasl-mechanism", "SCRAM-SHA-512", "-kafka-sasl-username", "u"}, "needs a password: set PURISTA_KAFKA_SASL_PASSWORD"},
		{[]string{"-kafka-sasl-mechanism", "PLAIN", "-kafka-sasl-username", "u", "-kafka-sasl-password-file", pw}, "clear text"},
		{[]string{"-kafka-sasl-username", "u"}, "no mechanism"},
		{[]string{"-kafka-tls-cert", "c.pem"}, "go together"},
		{[]string{"-kafka-sasl-mechanism", "SCRAM-SHA-512", "-kafka-sasl-username", "u", "-kafka-sasl-password-file", filepath.Join(dir, "missing")}, "no such file"},
	} {
		if _, err := parse(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	s, err = parse(t, "-kafka-tls-ca", notPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TLSConfig(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
}
