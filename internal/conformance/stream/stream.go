// Package stream is the server-streaming part of the conformance suite,
// run on every purista transport through the contract in
// proto/purista/testing/stream/v1. It lives apart from package conformance
// so that binaries linking only the unary suite do not link this contract.
package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/purista-go/purista/gateway"
	streamv1 "github.com/purista-go/purista/gen/purista/testing/stream/v1"
	"github.com/purista-go/purista/internal/conformance"
)

// Window is the most messages a transport may let a server run ahead of a
// client that does not read; the suite allows twice as many.
const Window = 64

// Server implements StreamService and records how its handlers ended.
type Server struct {
	streamv1.UnimplementedStreamServiceServer

	sent  atomic.Int64
	mu    sync.Mutex
	ended chan error
	md    metadata.MD
}

// NewServer returns a Server.
func NewServer() *Server { return &Server{ended: make(chan error, 16)} }

// Sent returns how many messages the last handler sent.
func (s *Server) Sent() int64 { return s.sent.Load() }

// Ended returns how handlers ended, one value per handler: nil, or the
// error that ended it (its context's, or a failed Send).
func (s *Server) Ended() <-chan error { return s.ended }

func (s *Server) Count(req *streamv1.CountRequest, st grpc.ServerStreamingServer[streamv1.CountResponse]) error {
	ctx := st.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.md = md
	s.mu.Unlock()
	s.sent.Store(0)
	if err := st.SetHeader(metadata.Pairs("x-count", fmt.Sprint(req.GetCount()))); err != nil {
		return err
	}
	padding := make([]byte, req.GetPadding())
	for i := int32(1); i <= req.GetCount(); i++ {
		if d := req.GetInterval().AsDuration(); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				s.ended <- ctx.Err()
				return status.FromContextError(ctx.Err()).Err()
			}
		}
		if err := st.Send(&streamv1.CountResponse{N: i, Padding: padding}); err != nil {
			s.ended <- err
			return err
		}
		s.sent.Store(int64(i))
	}
	st.SetTrailer(metadata.Pairs("x-sent", fmt.Sprint(s.sent.Load())))
	s.ended <- nil
	if req.GetFailCode() != 0 {
		return status.Error(codes.Code(req.GetFailCode()), req.GetFailMessage())
	}
	return nil
}

// Run runs the streaming suite. The tests share one system (newEnv is
// called once) and one server: starting a server costs a group join each.
func Run(t *testing.T, newEnv func(t testing.TB) conformance.Env) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c streamv1.StreamServiceClient, s *Server)
	}{
		{"InOrder", testInOrder},
		{"Empty", testEmpty},
		{"Error", testError},
		{"Cancel", testCancel},
		{"Deadline", testDeadline},
		{"FlowControl", testFlowControl},
		{"ClientStreamingUnimplemented", testClientStreaming},
		{"Validation", testValidation},
	}
	env := newEnv(t)
	impl := NewServer()
	srv := env.Server(t, conformance.Options{})
	streamv1.RegisterStreamServiceServer(srv, impl)
	srv.Start(t)
	t.Cleanup(srv.Stop)
	client := streamv1.NewStreamServiceClient(env.Client(t, conformance.Options{}))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			impl.drain()
			tc.fn(t, client, impl)
		})
	}
}

// drain forgets how earlier handlers ended.
func (s *Server) drain() {
	for len(s.ended) > 0 {
		<-s.ended
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// recvAll reads until the stream ends and returns the numbers received and
// the error that ended it (nil for a clean end).
func recvAll(st grpc.ServerStreamingClient[streamv1.CountResponse]) ([]int32, error) {
	var got []int32
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, m.GetN())
	}
}

func seq(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i + 1)
	}
	return out
}

func waitEnded(t *testing.T, s *Server, within time.Duration) error {
	t.Helper()
	select {
	case err := <-s.Ended():
		return err
	case <-time.After(within):
		t.Fatalf("the server handler did not end within %v", within)
		return nil
	}
}

func testInOrder(t *testing.T, c streamv1.StreamServiceClient, s *Server) {
	ctx := metadata.AppendToOutgoingContext(ctxTimeout(t, 30*time.Second), "x-user", "alice")
	var hdr, trl metadata.MD
	st, err := c.Count(ctx, &streamv1.CountRequest{Count: 300, Padding: 100}, grpc.Header(&hdr), grpc.Trailer(&trl))
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	h, err := st.Header()
	if err != nil || !slices.Equal(h.Get("x-count"), []string{"300"}) {
		t.Errorf("Header() = %v, %v; want x-count 300", h, err)
	}
	got, err := recvAll(st)
	if err != nil || !slices.Equal(got, seq(300)) {
		t.Fatalf("received %d messages (%v...), end %v; want 1..300 in order, then EOF", len(got), got[:min(len(got), 5)], err)
	}
	if tr := st.Trailer(); !slices.Equal(tr.Get("x-sent"), []string{"300"}) {
		t.Errorf("Trailer() = %v, want x-sent 300", tr)
	}
	if !slices.Equal(hdr.Get("x-count"), []string{"300"}) || !slices.Equal(trl.Get("x-sent"), []string{"300"}) {
		t.Errorf("call options got header %v, trailer %v", hdr, trl)
	}
	s.mu.Lock()
	md := s.md
	s.mu.Unlock()
	if !slices.Equal(md.Get("x-user"), []string{"alice"}) {
		t.Errorf("handler saw metadata %v, want x-user alice", md)
	}
}

func testEmpty(t *testing.T, c streamv1.StreamServiceClient, _ *Server) {
	st, err := c.Count(ctxTimeout(t, 30*time.Second), &streamv1.CountRequest{Count: 0})
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	if got, err := recvAll(st); err != nil || len(got) != 0 {
		t.Fatalf("empty stream: %v, %v; want no message and EOF", got, err)
	}
	if h, err := st.Header(); err != nil || !slices.Equal(h.Get("x-count"), []string{"0"}) {
		t.Errorf("Header() of an empty stream = %v, %v; want x-count 0 with the final status", h, err)
	}
}

func testError(t *testing.T, c streamv1.StreamServiceClient, _ *Server) {
	st, err := c.Count(ctxTimeout(t, 30*time.Second), &streamv1.CountRequest{Count: 3, FailCode: int32(codes.FailedPrecondition), FailMessage: "out of numbers"})
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	got, err := recvAll(st)
	if !slices.Equal(got, seq(3)) || status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != "out of numbers" {
		t.Fatalf("got %v then %v; want 1..3 then FAILED_PRECONDITION out of numbers", got, err)
	}
}

func testCancel(t *testing.T, c streamv1.StreamServiceClient, s *Server) {
	ctx, cancel := context.WithCancel(ctxTimeout(t, 30*time.Second))
	st, err := c.Count(ctx, &streamv1.CountRequest{Count: 1000, Interval: durationpb.New(10 * time.Millisecond)})
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	for i := range 5 {
		if m, err := st.Recv(); err != nil || m.GetN() != int32(i+1) {
			t.Fatalf("Recv %d = %v, %v", i+1, m, err)
		}
	}
	cancel()
	if _, err := recvAll(st); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel: %v, want CANCELED", err)
	}
	start := time.Now()
	if err := waitEnded(t, s, 5*time.Second); err == nil {
		t.Errorf("the handler ran to its end: the cancellation did not reach it")
	}
	if sent := s.Sent(); sent > 500 {
		t.Errorf("the handler sent %d messages: it went on long after the cancellation", sent)
	}
	t.Logf("handler stopped %v after the client cancelled, having sent %d", time.Since(start), s.Sent())
}

func testDeadline(t *testing.T, c streamv1.StreamServiceClient, s *Server) {
	st, err := c.Count(ctxTimeout(t, 700*time.Millisecond), &streamv1.CountRequest{Count: 1000, Interval: durationpb.New(10 * time.Millisecond)})
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	got, err := recvAll(st)
	if status.Code(err) != codes.DeadlineExceeded || len(got) == 0 {
		t.Fatalf("after %d messages: %v, want DEADLINE_EXCEEDED", len(got), err)
	}
	if err := waitEnded(t, s, 5*time.Second); err == nil {
		t.Errorf("the handler ran to its end past the deadline")
	}
}

func testFlowControl(t *testing.T, c streamv1.StreamServiceClient, s *Server) {
	const total, read = 2000, 10
	st, err := c.Count(ctxTimeout(t, 30*time.Second), &streamv1.CountRequest{Count: total, Padding: 1000})
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	for i := range read {
		if m, err := st.Recv(); err != nil || m.GetN() != int32(i+1) {
			t.Fatalf("Recv %d = %v, %v", i+1, m, err)
		}
	}
	// A client that stops reading holds the server back.
	time.Sleep(500 * time.Millisecond)
	if sent := s.Sent(); sent > read+2*Window {
		t.Errorf("the server sent %d messages to a client that read %d: flow control lets it run at most about %d ahead", sent, read, Window)
	}
	got, err := recvAll(st)
	if err != nil || len(got) != total-read || got[0] != read+1 || got[len(got)-1] != total {
		t.Fatalf("rest of the stream: %d messages, end %v; want %d..%d", len(got), err, read+1, total)
	}
}

func testClientStreaming(t *testing.T, c streamv1.StreamServiceClient, _ *Server) {
	up, err := c.Upload(ctxTimeout(t, 10*time.Second))
	if err == nil {
		_ = up.Send(&streamv1.UploadRequest{Chunk: []byte("x")})
		_, err = up.CloseAndRecv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("client-streaming call = %v, want UNIMPLEMENTED", err)
	}
}

// testValidation: a request that breaks the contract's rules ends the
// stream with INVALID_ARGUMENT and the field violations, before the handler
// runs.
func testValidation(t *testing.T, c streamv1.StreamServiceClient, s *Server) {
	st, err := c.Count(ctxTimeout(t, 30*time.Second), &streamv1.CountRequest{Count: -1})
	if err == nil {
		_, err = recvAll(st)
	}
	if status.Code(err) != codes.InvalidArgument || !slices.Equal(conformance.FieldViolations(err), []string{"count: int32.gte_lte"}) {
		t.Fatalf("Count(-1) = %v %v, want INVALID_ARGUMENT with the violation count: int32.gte_lte", err, conformance.FieldViolations(err))
	}
	select {
	case err := <-s.Ended():
		t.Fatalf("the handler ran for an invalid request (ended with %v)", err)
	default:
	}
}

// RunGateway serves StreamService through the HTTP gateway over the
// transport and reads its routes with a real HTTP client: each message is
// one line of newline-delimited JSON, an error after messages is a last
// {"error": ...} line, and a client that goes away mid-stream ends the
// handler.
func RunGateway(t *testing.T, newEnv func(t testing.TB) conformance.Env) {
	env := newEnv(t)
	impl := NewServer()
	srv := env.Server(t, conformance.Options{})
	streamv1.RegisterStreamServiceServer(srv, impl)
	srv.Start(t)
	t.Cleanup(srv.Stop)
	g, err := gateway.New(env.Client(t, conformance.Options{}),
		gateway.WithServices(gateway.Service{Contract: streamv1.StreamService_PuristaService, RegisterHTTP: streamv1.RegisterStreamServiceHTTP}), gateway.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(g)
	t.Cleanup(hs.Close)

	type line struct {
		Result *struct {
			N int32 `json:"n"`
		} `json:"result"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	get := func(ctx context.Context, query string) (*http.Response, *bufio.Scanner) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/v1/stream/count?"+query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", query, err)
		}
		return resp, bufio.NewScanner(resp.Body)
	}
	next := func(sc *bufio.Scanner) line {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("stream ended early: %v", sc.Err())
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		return l
	}

	t.Run("Complete", func(t *testing.T) {
		resp, sc := get(ctxTimeout(t, 30*time.Second), "count=5")
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		for i := int32(1); i <= 5; i++ {
			if l := next(sc); l.Result == nil || l.Result.N != i {
				t.Fatalf("line %d = %+v", i, l)
			}
		}
		if sc.Scan() {
			t.Errorf("unexpected line after the stream: %q", sc.Text())
		}
	})
	t.Run("ErrorAfterMessages", func(t *testing.T) {
		resp, sc := get(ctxTimeout(t, 30*time.Second), "count=2&failCode=9&failMessage=out+of+numbers")
		defer resp.Body.Close()
		for i := int32(1); i <= 2; i++ {
			if l := next(sc); l.Result == nil || l.Result.N != i {
				t.Fatalf("line %d = %+v", i, l)
			}
		}
		if l := next(sc); l.Error == nil || l.Error.Code != int(codes.FailedPrecondition) || l.Error.Message != "out of numbers" {
			t.Fatalf("last line = %+v, want the FAILED_PRECONDITION error", l)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		resp, _ := get(ctxTimeout(t, 30*time.Second), "count=-1")
		defer resp.Body.Close()
		var body struct {
			Code    int `json:"code"`
			Details []struct {
				Type            string `json:"@type"`
				FieldViolations []struct {
					Field, Reason string
				} `json:"fieldViolations"`
			} `json:"details"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("status %d, body not JSON: %v", resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusBadRequest || body.Code != int(codes.InvalidArgument) || len(body.Details) != 1 ||
			body.Details[0].Type != "type.googleapis.com/google.rpc.BadRequest" || len(body.Details[0].FieldViolations) != 1 ||
			body.Details[0].FieldViolations[0].Field != "count" {
			t.Fatalf("GET count=-1: %d %+v, want 400 with a BadRequest naming count", resp.StatusCode, body)
		}
	})
	t.Run("ClientGoesAway", func(t *testing.T) {
		impl.drain() // the handlers of the streams above
		ctx, cancel := context.WithCancel(ctxTimeout(t, 30*time.Second))
		resp, sc := get(ctx, "count=1000&interval=0.010s")
		for i := int32(1); i <= 3; i++ {
			if l := next(sc); l.Result == nil || l.Result.N != i {
				t.Fatalf("line %d = %+v", i, l)
			}
		}
		cancel()
		_ = resp.Body.Close()
		if err := waitEnded(t, impl, 5*time.Second); err == nil {
			t.Errorf("the handler ran to its end after the HTTP client went away")
		}
		if sent := impl.Sent(); sent > 500 {
			t.Errorf("the handler sent %d messages after the client went away at 3", sent)
		}
	})
}
