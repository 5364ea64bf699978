// Command demo sends the demo's HTTP requests to the example system's
// gateway and prints each as a curl command with its reply: `make demo`
// runs it through `purista dev --demo` (examples/purista.yaml), which
// starts it once the gateway answers and before the services run, so the
// first request waits in Kafka until the users service takes it.
//
//	PURISTA_GATEWAY_URL=http://127.0.0.1:8080 go run ./examples/demo
//
// It exits 0 when every reply is the one expected, 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/purista-go/purista/examples/system"
)

func main() {
	base := os.Getenv("PURISTA_GATEWAY_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, base); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, base string) error {
	demo := &system.Demo{Base: base, Out: os.Stdout}
	steps := system.DemoSteps()
	first := steps[0]
	fmt.Printf("demo: sending %s %s now; when the users service does not run yet, the request waits in Kafka until it takes it\n", first.Method, first.Path)
	ex, err := demo.Send(ctx, first)
	if err != nil {
		return err
	}
	demo.Print(ex)
	if err := demo.Check(ex); err != nil {
		return err
	}
	fmt.Printf("demo: answered after %v\n", ex.Took.Round(time.Millisecond))
	if _, err := demo.Run(ctx, steps[1:]); err != nil {
		return err
	}
	fmt.Printf("\ndemo: all %d requests answered as expected\n", len(steps))
	return nil
}
