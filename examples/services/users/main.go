// Command users runs users.v1.UsersService: the users team's service over Kafka.
//
//	go run ./examples/services/users -brokers 127.0.0.1:9092
//	PURISTA_BROKERS=kafka-1:9092,kafka-2:9092 PURISTA_LOG_FORMAT=json users
//
// Every flag has an environment variable (-h lists them). Run as many
// instances as the load needs: they share the requests through a consumer
// group. SIGINT or SIGTERM stops it gracefully: requests in progress are
// answered and committed, and the instance leaves the group so the others
// take over at once.
//
// The request topics must exist (`purista topics ensure`, or
// -ensure-topics for a development cluster).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/purista-go/purista/examples/system"
)

func main() {
	fs := flag.NewFlagSet("users", flag.ExitOnError)
	var cfg system.Config
	cfg.RegisterFlags(fs, false)
	_ = fs.Parse(os.Args[1:])
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "users:", err)
		os.Exit(2)
	}
	logger := cfg.Logger(os.Stderr, system.Users)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := system.ServeService(ctx, system.Users, cfg.Kafka(), logger); err != nil {
		logger.Error("users service failed", "error", err)
		os.Exit(1)
	}
	logger.Info("users service stopped")
}
