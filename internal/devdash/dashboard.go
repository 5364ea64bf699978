package devdash

import (
	"context"
	"embed"
	"encoding/json"
	"net/http"
	"regexp"
	"time"

	"github.com/purista-go/purista/transport/kafka"
)

//go:embed assets/index.html
var assets embed.FS

// Process is a process `purista dev` runs.
type Process struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Running bool   `json:"running"`
	// URL is its gateway or operational endpoints' address, if any.
	URL string `json:"url,omitempty"`
}

// Route is an HTTP route of the contracts.
type Route struct {
	Verb   string `json:"verb"`
	Path   string `json:"path"`
	Method string `json:"method"`
}

// Overview is the state of the system the page shows beside the calls.
type Overview struct {
	Brokers   []string            `json:"brokers"`
	Processes []Process           `json:"processes"`
	Routes    []Route             `json:"routes"`
	Groups    []kafka.GroupStatus `json:"groups"`
	// GroupsError says why Groups could not be read, if they could not.
	GroupsError string `json:"groupsError,omitempty"`
}

// Source returns the current Overview.
type Source func(ctx context.Context) Overview

// maxCalls is how many recent calls the page lists.
const maxCalls = 100

var traceID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Handler serves the dashboard page, its JSON API and the OTLP receiver:
//
//	GET  /                    the page
//	GET  /api/overview        processes, routes, consumer groups with instances and lag
//	GET  /api/calls           the gateway's recent calls, newest first
//	GET  /api/traces/{id}     the spans of a trace and of the event traces linked to it
//	POST /v1/traces           OTLP/HTTP trace export
func Handler(store *Store, overview Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := assets.ReadFile("assets/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /api/overview", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		writeJSON(w, overview(ctx))
	})
	mux.HandleFunc("GET /api/calls", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, store.Calls(maxCalls))
	})
	mux.HandleFunc("GET /api/traces/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !traceID.MatchString(id) {
			http.Error(w, "a trace id is 32 lower-case hex digits", http.StatusBadRequest)
			return
		}
		writeJSON(w, store.Trace(id))
	})
	mux.HandleFunc("/v1/traces", store.ServeOTLP)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
