// Command demo is what `make demo` runs. For now it starts the embedded
// Kafka-protocol broker, provisions a topic, sends a record through it and
// reads it back; the multi-team example system will replace it.
//
//	go run ./examples/demo          round trip, then exit
//	go run ./examples/demo -serve   keep the broker running until Ctrl-C
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/embedded"
)

func main() {
	serve := flag.Bool("serve", false, "keep the broker running until interrupted")
	port := flag.Int("port", 0, "broker port on 127.0.0.1 (0 = a free port)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	b, err := embedded.Start(embedded.WithPort(*port))
	if err != nil {
		log.Fatalf("demo: %v", err)
	}
	defer b.Close()
	addrs := b.Addrs()
	fmt.Printf("embedded Kafka broker listening on %s (started in %v)\n", strings.Join(addrs, ","), time.Since(start).Round(time.Microsecond))

	if err := roundTrip(ctx, addrs); err != nil {
		log.Fatalf("demo: %v", err)
	}

	if !*serve {
		fmt.Println("done; run `go run ./examples/demo -serve` to keep the broker up, `make test` for the test suite")
		return
	}
	fmt.Printf("serving; point a Kafka client at %s, Ctrl-C to stop\n", strings.Join(addrs, ","))
	<-ctx.Done()
	fmt.Println("stopping")
}

func roundTrip(ctx context.Context, addrs []string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	const topic = "demo.greetings"

	client := &kafka.Client{Addr: kafka.TCP(addrs...)}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
	})
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	if err := resp.Errors[topic]; err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	fmt.Printf("provisioned topic %s (topics are never auto-created)\n", topic)

	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: topic, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	sent := time.Now()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("greeting"), Value: []byte("hello from purista-go")}); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if err := w.Close(); err != nil {
		return err
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, Topic: topic, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	fmt.Printf("produced and consumed %s/%d@%d %q=%q in %v\n", m.Topic, m.Partition, m.Offset, m.Key, m.Value, time.Since(sent).Round(time.Microsecond))
	return nil
}
