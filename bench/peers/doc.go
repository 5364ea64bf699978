// Package peers measures purista's Kafka transport beside what its users
// would otherwise pick for request/reply over Kafka, on the same embedded
// broker in the same process: today Watermill's requestreply component over
// its Kafka pub/sub (watermill_test.go).
//
// It is a Go module of its own so that the main module gains none of the
// peers' dependencies. `make bench` runs it; by hand:
//
//	cd bench/peers && go test -run '^$' -bench . -benchtime=1x
package peers
