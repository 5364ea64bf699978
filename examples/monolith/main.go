// Command monolith runs the whole example system — every service and the
// gateway — in one process on the in-process transport: no broker, no
// topics. `make demo MONOLITH=1` runs it through `purista dev`
// (examples/purista.monolith.yaml).
//
//	PURISTA_HTTP_ADDR=127.0.0.1:8080 go run ./examples/monolith
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/purista-go/purista/examples/system"
)

func main() {
	addr := os.Getenv("PURISTA_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	var cfg system.Config
	logger := func(component string) *slog.Logger { return cfg.Logger(os.Stderr, component) }
	cfg.LogLevel, cfg.LogFormat = os.Getenv("PURISTA_LOG_LEVEL"), os.Getenv("PURISTA_LOG_FORMAT")
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// OTLP export when OTEL_EXPORTER_OTLP_* ask for it: the gateway's spans
	// (the in-process transport makes none of its own).
	shutdown, _, err := system.SetupTracing(ctx, "monolith")
	if err != nil {
		fmt.Fprintf(os.Stderr, "monolith: %v\n", err)
		os.Exit(2)
	}
	defer func() { _ = shutdown(context.Background()) }()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "monolith: cannot listen on %s: %v (set PURISTA_HTTP_ADDR to a free address)\n", addr, err)
		os.Exit(1)
	}
	if err := system.ServeMonolith(ctx, ln, system.GatewayConfig{Token: os.Getenv("PURISTA_GATEWAY_TOKEN")}, logger, nil); err != nil {
		logger("monolith").Error("monolith failed", "error", err)
		os.Exit(1)
	}
	logger("monolith").Info("monolith stopped")
}
