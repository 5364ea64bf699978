package system

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/purista-go/purista/gateway"
)

// Main runs one component — Gateway or one of Services — as a process of
// its own over Kafka: configuration from flags and PURISTA_* environment
// variables, logs on standard error, a graceful stop on SIGINT or SIGTERM.
// It returns the process's exit code: 0 after a clean stop, 1 when the
// component failed, 2 for bad configuration. The mains under examples/ are
// this one call.
func Main(name string, args []string) int {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	var cfg Config
	cfg.RegisterFlags(fs, name == Gateway)
	_ = fs.Parse(args)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	logger := cfg.Logger(os.Stderr, name)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, name, cfg, logger); err != nil {
		logger.Error(name+" failed", "error", err)
		return 1
	}
	logger.Info(name + " stopped")
	return 0
}

// Run runs component name over Kafka as cfg says until ctx ends: the
// gateway on cfg.HTTPAddr, a service with its operational endpoints on
// cfg.OpsAddr when set.
func Run(ctx context.Context, name string, cfg Config, logger *slog.Logger) error {
	if name == Gateway {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("gateway cannot listen on %s: %w", cfg.HTTPAddr, err)
		}
		gc := GatewayConfig{Token: cfg.Token}
		if cfg.JWKSURL != "" {
			auth, err := gateway.NewJWTAuth(ctx, gateway.JWTConfig{
				JWKSURL: cfg.JWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, Realm: "purista-example",
				ForwardClaims: map[string]string{"sub": "x-user-id"},
			})
			if err != nil {
				_ = ln.Close()
				return err
			}
			defer auth.Close()
			gc.Options = append(gc.Options, gateway.WithAuthenticator(auth))
		}
		return ServeGateway(ctx, ln, cfg.Kafka(), gc, logger)
	}
	var opts []ServiceOption
	if cfg.OpsAddr != "" {
		ln, err := net.Listen("tcp", cfg.OpsAddr)
		if err != nil {
			return fmt.Errorf("%s cannot listen on %s for its operational endpoints: %w", name, cfg.OpsAddr, err)
		}
		opts = append(opts, WithOps(ln))
	}
	return ServeService(ctx, name, cfg.Kafka(), logger, opts...)
}
