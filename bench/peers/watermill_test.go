package peers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/components/requestreply"
	"github.com/ThreeDotsLabs/watermill/message"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/kafkatest"
	"github.com/purista-go/purista/internal/loadtest"
	"github.com/purista-go/purista/transport/kafka"
)

// payload is the request payload of every call: 256 bytes, as in
// transport/kafka's benchmarks.
var payload = make([]byte, 256)

// callTimeout bounds every call of the benchmark.
const callTimeout = 10 * time.Second

// puristaEcho serves the Echo service over the Kafka transport on brokers
// with its defaults, and returns a call that has had an answer.
func puristaEcho(tb testing.TB, brokers []string) func() error {
	quiet := slog.New(slog.DiscardHandler)
	common := []kafka.Option{kafka.WithContracts(conformance.Contracts()...), kafka.WithTopicPrefix(kafkatest.TopicName(tb) + "."),
		kafka.WithEnsureTopics(3, 1), kafka.WithLogger(quiet)}
	srvOpts := make([]kafka.ServerOption, 0, len(common))
	cliOpts := make([]kafka.ClientOption, 0, len(common))
	for _, o := range common {
		srvOpts, cliOpts = append(srvOpts, o), append(cliOpts, o)
	}
	srv, err := kafka.NewServer(brokers, srvOpts...)
	if err != nil {
		tb.Fatal(err)
	}
	testingv1.RegisterEchoServiceServer(srv, &conformance.EchoServer{Name: "purista"})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	tb.Cleanup(func() {
		srv.GracefulStop()
		if err := <-served; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafka.Dial(ctx, brokers, cliOpts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	c := testingv1.NewEchoServiceClient(conn)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_, err := c.Echo(ctx, &testingv1.EchoRequest{Payload: payload})
		return err
	}
	if err := call(); err != nil { // the server has joined its group
		tb.Fatalf("purista warm-up call: %v", err)
	}
	return call
}

// watermillEcho serves an echo over Watermill's request/reply component
// in its stock wiring on Kafka (watermill-kafka, Sarama with Watermill's
// default configs): a CommandBus publishes commands; a CommandProcessor
// on a Router runs the handler, which replies through a PubSubBackend; the
// caller listens for its reply with a subscriber the backend builds for
// every call (SubscriberConstructor), on a reply topic of its own, and
// skips replies to others. Requests and replies are protobuf and JSON, the
// component's own marshalers. It returns a call that has had an answer.
func watermillEcho(tb testing.TB, brokers []string) func() error {
	logger := watermill.NopLogger{}
	prefix := kafkatest.TopicName(tb) + "."
	commands, replies := prefix+"commands", prefix+"replies"
	kafkatest.CreateTopic(tb, brokers, commands, 3)
	kafkatest.CreateTopic(tb, brokers, replies, 1)

	pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: brokers, Marshaler: wkafka.DefaultMarshaler{}}, logger)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = pub.Close() })
	backend, err := requestreply.NewPubSubBackend(requestreply.PubSubBackendConfig{
		Publisher: pub,
		SubscriberConstructor: func(requestreply.PubSubBackendSubscribeParams) (message.Subscriber, error) {
			return wkafka.NewSubscriber(wkafka.SubscriberConfig{Brokers: brokers, Unmarshaler: wkafka.DefaultMarshaler{}}, logger)
		},
		GenerateSubscribeTopic: func(requestreply.PubSubBackendSubscribeParams) (string, error) { return replies, nil },
		GeneratePublishTopic:   func(requestreply.PubSubBackendPublishParams) (string, error) { return replies, nil },
		Logger:                 logger,
	}, requestreply.BackendPubsubJSONMarshaler[*testingv1.EchoResponse]{})
	if err != nil {
		tb.Fatal(err)
	}

	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		tb.Fatal(err)
	}
	marshaler := cqrs.ProtoMarshaler{}
	bus, err := cqrs.NewCommandBusWithConfig(pub, cqrs.CommandBusConfig{
		GeneratePublishTopic: func(cqrs.CommandBusGeneratePublishTopicParams) (string, error) { return commands, nil },
		Marshaler:            marshaler,
		Logger:               logger,
	})
	if err != nil {
		tb.Fatal(err)
	}
	processor, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) { return commands, nil },
		SubscriberConstructor: func(cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return wkafka.NewSubscriber(wkafka.SubscriberConfig{Brokers: brokers, Unmarshaler: wkafka.DefaultMarshaler{}, ConsumerGroup: prefix + "echo"}, logger)
		},
		Marshaler: marshaler,
		Logger:    logger,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := processor.AddHandlers(requestreply.NewCommandHandlerWithResult("echo", backend,
		func(_ context.Context, in *testingv1.EchoRequest) (*testingv1.EchoResponse, error) {
			return &testingv1.EchoResponse{Message: in.GetMessage(), Payload: in.GetPayload()}, nil
		})); err != nil {
		tb.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var running sync.WaitGroup
	running.Add(1)
	go func() {
		defer running.Done()
		if err := router.Run(ctx); err != nil {
			tb.Errorf("watermill router: %v", err)
		}
	}()
	tb.Cleanup(func() {
		stop()
		running.Wait()
	})
	select {
	case <-router.Running():
	case <-time.After(30 * time.Second):
		tb.Fatal("watermill router not running after 30 s")
	}

	call := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		reply, err := requestreply.SendWithReply(ctx, bus, backend, &testingv1.EchoRequest{Payload: payload})
		if err == nil {
			err = reply.Error
		}
		if err == nil && len(reply.HandlerResult.GetPayload()) != len(payload) {
			err = fmt.Errorf("watermill reply has %d payload bytes, want %d", len(reply.HandlerResult.GetPayload()), len(payload))
		}
		return err
	}
	// The command consumer group starts at the newest offset (Sarama's
	// default): commands sent before it joined are not read. Call until
	// one is answered.
	for deadline := time.Now().Add(60 * time.Second); ; {
		err := call(2 * time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("watermill warm-up: no reply within 60 s: %v", err)
		}
	}
	return func() error { return call(callTimeout) }
}

var figuresOnce sync.Once

// BenchmarkVsWatermill measures, in alternating rounds on one embedded
// broker, the purista transport and Watermill's request/reply at 64 calls
// in flight, and one call at a time, and prints the medians of the rounds
// and the ratio of the rates as figure: lines. Watermill's calls are fewer
// per round (it is two orders of magnitude slower); every round is also
// bounded in time. Its work is fixed: run it with -benchtime=1x.
func BenchmarkVsWatermill(b *testing.B) {
	brokers := kafkatest.Embedded(b)
	purista := puristaEcho(b, brokers)
	wm := watermillEcho(b, brokers)
	const rounds, inflight, budget = 3, 64, 20 * time.Second
	const pCalls, wCalls, pSeq, wSeq = 5000, 500, 300, 20
	var pRPS, wRPS, pP50, wP50 []float64
	measure := func(f func() error, calls, seq int) (rps, p50 float64) {
		rps, err := loadtest.Rate(calls, inflight, budget, f)
		if err == nil {
			var lat []time.Duration
			lat, err = loadtest.Sequential(seq, budget, f)
			p50 = float64(loadtest.Percentile(lat, 0.5))
		}
		if err != nil {
			b.Fatal(errors.Join(errors.New("a call failed"), err))
		}
		return rps, p50
	}
	for range b.N {
		for range rounds {
			r, p := measure(purista, pCalls, pSeq)
			pRPS, pP50 = append(pRPS, r), append(pP50, p)
			r, p = measure(wm, wCalls, wSeq)
			wRPS, wP50 = append(wRPS, r), append(wP50, p)
		}
	}
	b.ReportMetric(loadtest.Median(pRPS), "purista-calls/s")
	b.ReportMetric(loadtest.Median(wRPS), "watermill-calls/s")
	b.ReportMetric(loadtest.Median(pP50)/1e3, "purista-p50-µs")
	b.ReportMetric(loadtest.Median(wP50)/1e3, "watermill-p50-µs")
	figuresOnce.Do(func() {
		fmt.Printf("figure: watermill_rps64 %.0f\n", loadtest.Median(wRPS))
		fmt.Printf("figure: watermill_p50_us %.0f\n", loadtest.Median(wP50)/1e3)
		fmt.Printf("figure: vs_watermill_rps64 %.0f\n", loadtest.Median(pRPS)/loadtest.Median(wRPS))
		fmt.Printf("figure: vs_watermill_p50 %.3f\n", loadtest.Median(pP50)/loadtest.Median(wP50))
	})
}
