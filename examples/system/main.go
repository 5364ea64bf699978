package system

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
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
	var err error
	if name == Gateway {
		var ln net.Listener
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			logger.Error("gateway cannot listen", "addr", cfg.HTTPAddr, "error", err)
			return 1
		}
		err = ServeGateway(ctx, ln, cfg.Kafka(), GatewayConfig{Token: cfg.Token}, logger)
	} else {
		err = ServeService(ctx, name, cfg.Kafka(), logger)
	}
	if err != nil {
		logger.Error(name+" failed", "error", err)
		return 1
	}
	logger.Info(name + " stopped")
	return 0
}
