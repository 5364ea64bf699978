// Command gateway is the HTTP edge of the example system: every route of
// the example contracts (users, orders, notifications) compiled in, calling
// the services over Kafka. It needs no service to be up when it starts, nor
// ever learns routes from them: a request for a service that is not running
// yet waits in Kafka until an instance takes it, within the route's
// timeout.
//
//	go run ./examples/gateway -brokers 127.0.0.1:9092
//	PURISTA_BROKERS=kafka-1:9092 PURISTA_GATEWAY_TOKEN=s3cret gateway
//
// Then:
//
//	curl -s localhost:8080/routes            the compiled route table
//	curl -s localhost:8080/openapi.v3.json   OpenAPI of every contract
//	curl -s localhost:8080/v1/users -d '{"email":"ada@example.com","display_name":"Ada"}'
//
// With -token, routes not marked public in the contracts need
// "Authorization: Bearer <token>". SIGINT or SIGTERM stops it gracefully:
// /readyz fails, in-flight requests finish, the Kafka client closes.
package main

import (
	"os"

	"github.com/purista-go/purista/examples/system"
)

func main() { os.Exit(system.Main(system.Gateway, os.Args[1:])) }
