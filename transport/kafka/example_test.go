package kafka_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/purista-go/purista/embedded"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/transport/kafka"
)

// A service served over Kafka and called through the client that
// protoc-gen-go-grpc generated, on the embedded broker.
func Example() {
	broker, err := embedded.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	ctx := context.Background()

	// The server: handed the contract of the service it serves, the
	// ordinary gRPC implementation is registered, then served.
	srv, err := kafka.NewServer(broker.Addrs(), kafka.WithContracts(testingv1.EchoService_PuristaService),
		kafka.WithEnsureTopics(3, 1), kafka.WithLogger(quiet))
	if err != nil {
		log.Fatal(err)
	}
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "example"})
	go func() { _ = srv.Serve(ctx) }()
	defer srv.GracefulStop()

	// The client: the generated client over a Kafka connection handed the
	// contract of the service it calls. It ensures the request topics too,
	// so the call need not wait for Serve to create them: the request waits
	// in the topic until the server takes it.
	conn, err := kafka.Dial(ctx, broker.Addrs(), kafka.WithContracts(testingv1.EchoService_PuristaService),
		kafka.WithEnsureTopics(3, 1), kafka.WithLogger(quiet))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	echo := testingv1.NewEchoServiceClient(conn)

	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := echo.Echo(callCtx, &testingv1.EchoRequest{Message: "hello over Kafka"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetMessage(), "from", resp.GetServer())
	// Output: hello over Kafka from example
}
