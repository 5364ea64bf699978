package inproc_test

import (
	"testing"

	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/internal/conformance/stream"
	"github.com/purista-go/purista/transport/inproc"
)

func TestStreams(t *testing.T) {
	stream.Run(t, func(t testing.TB) conformance.Env {
		ch := inproc.New()
		t.Cleanup(func() { _ = ch.Close() })
		return &env{ch: ch}
	})
}

func TestStreamsThroughGateway(t *testing.T) {
	stream.RunGateway(t, func(t testing.TB) conformance.Env {
		ch := inproc.New()
		t.Cleanup(func() { _ = ch.Close() })
		return &env{ch: ch}
	})
}
