// Package devdash is the local dashboard of `purista dev`: a web page
// showing the processes, services and their instances, routes, topics with
// their consumer lag, the calls the gateway served recently and, for a
// chosen call, its trace as a waterfall across the gateway, Kafka and the
// services.
//
// The processes `purista dev` starts export their spans over OTLP/HTTP
// (the standard OTEL_EXPORTER_OTLP_* variables, set by dev) to the
// dashboard's /v1/traces, which keeps the most recent ones in memory. The
// page is plain HTML and JavaScript served from this package (embed).
package devdash

import (
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Span is a span as the dashboard shows it.
type Span struct {
	TraceID  string    `json:"traceId"`
	SpanID   string    `json:"spanId"`
	ParentID string    `json:"parentId,omitempty"`
	Service  string    `json:"service"`
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	// StartUS and DurUS are the start in microseconds since the epoch and
	// the duration in microseconds: what the waterfall draws, finer than
	// JavaScript's dates.
	StartUS int64             `json:"startUs"`
	DurUS   int64             `json:"durUs"`
	Error   bool              `json:"error,omitempty"`
	Status  string            `json:"status,omitempty"`
	Attrs   map[string]string `json:"attrs,omitempty"`
	// Links are the trace ids this span links to (an event's publication).
	Links []string `json:"links,omitempty"`
}

// Call is a request the gateway served: the root of a trace.
type Call struct {
	TraceID   string    `json:"traceId"`
	Start     time.Time `json:"start"`
	Route     string    `json:"route"`
	Path      string    `json:"path"`
	Status    string    `json:"status"`
	LatencyMS float64   `json:"latencyMs"`
	RequestID string    `json:"requestId"`
	Error     bool      `json:"error,omitempty"`
}

// Store keeps the most recent spans in memory.
type Store struct {
	mu    sync.Mutex
	max   int
	spans []Span // oldest first
}

// NewStore returns a Store keeping at most max spans.
func NewStore(max int) *Store { return &Store{max: max} }

// Add stores spans, dropping the oldest beyond the Store's size.
func (s *Store) Add(spans ...Span) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = append(s.spans, spans...)
	if over := len(s.spans) - s.max; over > 0 {
		s.spans = slices.Delete(s.spans, 0, over)
	}
}

// Calls returns the gateway's most recent calls, newest first: the server
// spans of HTTP requests (those with an http.request.method attribute).
func (s *Store) Calls(limit int) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for i := len(s.spans) - 1; i >= 0 && len(out) < limit; i-- {
		sp := s.spans[i]
		if sp.Kind != "server" || sp.Attrs["http.request.method"] == "" {
			continue
		}
		out = append(out, Call{
			TraceID: sp.TraceID, Start: sp.Start, Route: sp.Name, Path: sp.Attrs["url.path"],
			Status: sp.Attrs["http.response.status_code"], LatencyMS: float64(sp.End.Sub(sp.Start).Microseconds()) / 1000,
			RequestID: sp.Attrs["purista.request_id"], Error: sp.Error,
		})
	}
	slices.SortStableFunc(out, func(a, b Call) int { return b.Start.Compare(a.Start) })
	return out
}

// Trace returns the spans of a trace and of the traces that link to it
// (the subscribers of events it published), ordered by start.
func (s *Store) Trace(traceID string) []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	traces := map[string]bool{traceID: true}
	for _, sp := range s.spans {
		if slices.Contains(sp.Links, traceID) {
			traces[sp.TraceID] = true
		}
	}
	var out []Span
	for _, sp := range s.spans {
		if traces[sp.TraceID] {
			out = append(out, sp)
		}
	}
	slices.SortStableFunc(out, func(a, b Span) int { return a.Start.Compare(b.Start) })
	return out
}

// maxOTLPBody bounds one export request.
const maxOTLPBody = 16 << 20

// ServeOTLP receives an OTLP/HTTP trace export (POST /v1/traces,
// application/x-protobuf or application/json) and stores its spans.
func (s *Store) ServeOTLP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST an OTLP ExportTraceServiceRequest here", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOTLPBody))
	if err != nil {
		http.Error(w, "reading the export: "+err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-protobuf", "application/protobuf":
		err = proto.Unmarshal(body, &req)
	case "application/json":
		err = protojson.Unmarshal(body, &req)
	default:
		http.Error(w, fmt.Sprintf("Content-Type %q: send application/x-protobuf or application/json", ct), http.StatusUnsupportedMediaType)
		return
	}
	if err != nil {
		http.Error(w, "the body is not an OTLP ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.Add(convert(&req)...)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func convert(req *coltracepb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		service := attrString(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				o := Span{
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					Service: service, Name: sp.GetName(), Kind: kindName(sp.GetKind()),
					Start: time.Unix(0, int64(sp.GetStartTimeUnixNano())), End: time.Unix(0, int64(sp.GetEndTimeUnixNano())),
					Error: sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, Status: sp.GetStatus().GetMessage(),
					Attrs: map[string]string{},
				}
				o.StartUS, o.DurUS = o.Start.UnixMicro(), o.End.Sub(o.Start).Microseconds()
				if len(sp.GetParentSpanId()) > 0 {
					o.ParentID = hex.EncodeToString(sp.GetParentSpanId())
				}
				for _, kv := range sp.GetAttributes() {
					o.Attrs[kv.GetKey()] = valueString(kv.GetValue())
				}
				for _, l := range sp.GetLinks() {
					o.Links = append(o.Links, hex.EncodeToString(l.GetTraceId()))
				}
				out = append(out, o)
			}
		}
	}
	return out
}

func kindName(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return "internal"
}

func attrString(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return valueString(kv.GetValue())
		}
	}
	return ""
}

func valueString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return ""
}
