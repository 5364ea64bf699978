package embedded_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/purista-go/purista/embedded"
)

// Start a broker, create a topic through the admin API (topics are never
// created automatically), write a record and read it back with kafka-go.
func Example() {
	b, err := embedded.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	client := &kafka.Client{Addr: kafka.TCP(b.Addrs()...)}
	created, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: "greetings", NumPartitions: 1, ReplicationFactor: 1}},
	})
	if err != nil || created.Errors["greetings"] != nil {
		log.Fatal(err, created.Errors)
	}

	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), Topic: "greetings", BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("hello, embedded kafka")}); err != nil {
		log.Fatal(err)
	}
	_ = w.Close()

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs(), Topic: "greetings", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s\n", m.Topic, m.Value)
	// Output: greetings: hello, embedded kafka
}
