// Command gateway is the HTTP edge of the example system: every route of
// the example contracts (users, orders, notifications) compiled in, calling
// the services over Kafka. It needs no service to be up when it starts, nor
// ever learns routes from them: a request for a service that is not running
// yet waits in Kafka until an instance takes it, within the route's
// timeout.
//
//	go run ./examples/gateway -brokers 127.0.0.1:9092
//	PURISTA_BROKERS=kafka-1:9092 PURISTA_GATEWAY_TOKEN=s3cret gateway
//
// Then:
//
//	curl -s localhost:8080/routes            the compiled route table
//	curl -s localhost:8080/openapi.v3.json   OpenAPI of every contract
//	curl -s localhost:8080/v1/users -d '{"email":"ada@example.com","display_name":"Ada"}'
//
// With -token, routes not marked public in the contracts need
// "Authorization: Bearer <token>". SIGINT or SIGTERM stops it gracefully:
// /readyz fails, in-flight requests finish, the Kafka client closes.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/purista-go/purista/examples/system"
)

func main() {
	fs := flag.NewFlagSet("gateway", flag.ExitOnError)
	var cfg system.Config
	cfg.RegisterFlags(fs, true)
	_ = fs.Parse(os.Args[1:])
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	logger := cfg.Logger(os.Stderr, system.Gateway)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		logger.Error("gateway cannot listen", "addr", cfg.HTTPAddr, "error", err)
		os.Exit(1)
	}
	if err := system.ServeGateway(ctx, ln, cfg.Kafka(), system.GatewayConfig{Token: cfg.Token}, logger); err != nil {
		logger.Error("gateway failed", "error", err)
		os.Exit(1)
	}
	logger.Info("gateway stopped")
}
