// Command gateway is the HTTP edge for every contract linked into it: here
// the Echo test service. It is the few lines a gateway binary needs.
//
//	go run ./examples/gateway -brokers host:9092   # services run elsewhere
//	go run ./examples/gateway                      # embedded broker + an Echo service, to try it
//
// Then:
//
//	curl -s localhost:8080/v1/echo -d '{"message":"hi"}'
//	curl -s localhost:8080/routes
//	curl -s localhost:8080/openapi.v3.json
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/purista-go/purista/embedded"
	"github.com/purista-go/purista/gateway"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1" // links the contract's routes in
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/transport/kafka"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP listen address")
	brokers := flag.String("brokers", "", "Kafka bootstrap brokers, comma-separated; empty starts an embedded broker and an Echo service")
	openapi := flag.String("openapi", "gen/openapi/purista.swagger.json", "OpenAPI v2 document(s) of the contracts, comma-separated")
	flag.Parse()
	if err := run(*addr, *brokers, *openapi); err != nil {
		log.Fatal(err)
	}
}

func run(addr, brokers, openapi string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	var bs []string
	if brokers == "" {
		b, err := embedded.Start()
		if err != nil {
			return err
		}
		defer b.Close()
		bs = b.Addrs()
		if err := serveEcho(ctx, bs, logger); err != nil {
			return err
		}
	} else {
		bs = strings.Split(brokers, ",")
	}

	var docs [][]byte
	for _, p := range strings.Split(openapi, ",") {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		docs = append(docs, b)
	}

	// The gateway: a Kafka client connection and the compiled-in routes.
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := kafka.Dial(dctx, bs, kafka.WithLogger(logger))
	if err != nil {
		return err
	}
	g, err := gateway.New(conn, gateway.WithOpenAPI(docs...), gateway.WithLogger(logger))
	if err != nil {
		return err
	}
	logger.Info("gateway listening", "addr", addr, "brokers", bs, "routes", len(g.Routes()))
	return gateway.ListenAndServe(ctx, addr, g) // closes conn on shutdown
}

// serveEcho runs the Echo service over Kafka in this process, standing in
// for a service deployed on its own.
func serveEcho(ctx context.Context, brokers []string, logger *slog.Logger) error {
	srv, err := kafka.NewServer(brokers, kafka.WithEnsureTopics(3, 1), kafka.WithLogger(logger))
	if err != nil {
		return err
	}
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "example"})
	go func() {
		if err := srv.Serve(context.Background()); err != nil {
			logger.Error("echo service stopped", "error", err)
		}
	}()
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	return nil
}
