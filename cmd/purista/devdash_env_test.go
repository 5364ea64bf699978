package main

import (
	"slices"
	"testing"
)

// TestDashboardEnv: a process exports its spans to the dashboard unless the
// user's environment or its own env in purista.yaml names an OTLP endpoint.
func TestDashboardEnv(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	db := &dashboard{url: "http://127.0.0.1:9"}
	if got := db.env("users", nil); !slices.Contains(got, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:9/v1/traces") {
		t.Fatalf("env without an endpoint of the user's = %v, want the dashboard's", got)
	}
	if got := db.env("users", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}); got != nil {
		t.Errorf("env with the process's own endpoint = %v, want none", got)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
	if got := db.env("users", nil); got != nil {
		t.Errorf("env with the user's endpoint = %v, want none", got)
	}
}
