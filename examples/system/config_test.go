package system_test

import (
	"flag"
	"strings"
	"testing"

	"github.com/purista-go/purista/examples/system"
)

// TestConfigRefusals: settings that cannot work together stop the
// component at start, naming the flags.
func TestConfigRefusals(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-token", "t", "-jwks-url", "http://127.0.0.1:1/jwks.json"}, "-token and -jwks-url both set"},
		{[]string{"-jwt-issuer", "https://issuer"}, "need -jwks-url"},
		{[]string{"-client-id-prefix", "orders/"}, "-client-id-prefix"},
		{[]string{"-kafka-sasl-mechanism", "SCRAM-SHA-512"}, "needs a user name"},
		{[]string{"-kafka-tls-cert", "c.pem"}, "go together"},
	} {
		fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
		var cfg system.Config
		cfg.RegisterFlags(fs, true)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
