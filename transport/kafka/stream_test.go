package kafka_test

import (
	"testing"

	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/conformance/stream"
	"github.com/purista-go/purista/internal/kafkatest"
)

func TestStreams(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		stream.Run(t, func(t testing.TB) conformance.Env { return newEnv(t, brokers) })
	})
}

func TestStreamsThroughGateway(t *testing.T) {
	kafkatest.Brokers(t, func(t *testing.T, brokers []string) {
		stream.RunGateway(t, func(t testing.TB) conformance.Env { return newEnv(t, brokers) })
	})
}
