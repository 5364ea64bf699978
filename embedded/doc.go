// Package embedded runs a Kafka-protocol broker inside the current process.
//
// It exists so that `make demo` and the fast tests need nothing but Go: no
// Java, no container, nothing to start by hand. The broker speaks the Kafka
// wire protocol, so the same client code (github.com/segmentio/kafka-go) that
// talks to a production cluster talks to it unchanged: produce and fetch,
// consumer groups, offset commits, the admin API (CreateTopics, Metadata,
// DeleteTopics), SASL and TLS.
//
// The broker is github.com/twmb/franz-go/pkg/kfake, wrapped with the settings
// this project relies on:
//
//   - one broker node listening on 127.0.0.1 only (a free port by default, see
//     [WithPort]);
//   - topics are never created automatically: every topic must be created
//     through the admin API, exactly as the transport provisions topics on a
//     real cluster;
//   - consumer groups may use session timeouts from 1 s (real Kafka's default
//     minimum is 6 s; scripts/kafka.sh starts the real test broker with the
//     same 1 s minimum) so tests can exercise fail-over quickly;
//   - state lives in memory unless [WithDataDir] names a directory, in which
//     case topics, records and committed offsets survive a restart.
//
// It is a test and development broker. It is not replicated and it is not
// tuned for production: production uses any Kafka-compatible cluster.
//
// Start one, hand [Broker.Addrs] to a Kafka client, and Close it when done:
//
//	b, err := embedded.Start()
//	if err != nil { ... }
//	defer b.Close()
//	client := &kafka.Client{Addr: kafka.TCP(b.Addrs()...)}
package embedded
