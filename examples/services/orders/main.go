// Command orders runs orders.v1.OrdersService, the orders team's service,
// over Kafka. It calls the users and notifications services over Kafka too.
//
//	go run ./examples/services/orders -brokers 127.0.0.1:9092
//	PURISTA_BROKERS=kafka-1:9092,kafka-2:9092 PURISTA_LOG_FORMAT=json orders
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
	"os"

	"github.com/purista-go/purista/examples/system"
)

func main() { os.Exit(system.Main(system.Orders, os.Args[1:])) }
