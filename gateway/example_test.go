package gateway_test

import (
	"context"
	"crypto/subtle"
	"log"
	"os"
	"os/signal"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/purista-go/purista/gateway"
	// Importing the generated packages registers their services and routes.
	_ "github.com/purista-go/purista/gen/purista/testing/v1"
)

// A gateway for every contract linked into the binary, over any client
// connection (kafka.Dial's in production), with bearer-token
// authentication, served until interrupted and then shut down gracefully.
func Example() {
	var conn grpc.ClientConnInterface // e.g. kafka.Dial(ctx, brokers)
	openapi, err := os.ReadFile("gen/openapi/purista.swagger.json")
	if err != nil {
		log.Fatal(err)
	}

	tokens := map[string]string{"s3cret": "alice"}
	auth := gateway.BearerAuth("shop", func(ctx context.Context, token string, route gateway.Route) (context.Context, error) {
		for t, user := range tokens {
			if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
				// The service sees the verified user as x-user metadata.
				return metadata.AppendToOutgoingContext(ctx, "x-user", user), nil
			}
		}
		return nil, status.Error(codes.Unauthenticated, "unknown token")
	})

	g, err := gateway.New(conn,
		gateway.WithOpenAPI(openapi),
		gateway.WithAuthenticator(auth),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := gateway.ListenAndServe(ctx, ":8080", g); err != nil {
		log.Fatal(err)
	}
}
