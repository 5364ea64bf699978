package gateway_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/purista-go/purista"
	"github.com/purista-go/purista/gateway"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/internal/conformance"
	"github.com/purista-go/purista/transport/inproc"
)

// The gateway starts first, a call arrives, and the service comes up 2 s
// later: the call waits for it and returns 200.
func testServiceStartsLater(t *testing.T, env conformance.Env) {
	url, _ := startGateway(t, env.Client(t, conformance.Options{}))
	start := time.Now()
	resc := make(chan response, 1)
	go func() {
		resc <- do(t, "POST", url+"/v1/echo", strings.NewReader(`{"message":"early","key":"k"}`), "Grpc-Timeout", "20S")
	}()
	time.Sleep(2 * time.Second)
	echo := &conformance.EchoServer{Name: "late"}
	startServer(t, env, echo)
	var r response
	select {
	case r = <-resc:
	case <-time.After(25 * time.Second):
		t.Fatal("no answer")
	}
	expectStatus(t, r, 200)
	mustContain(t, "body", string(r.Body), `"message":"early"`, `"server":"late"`)
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("answered after %v, before the service started", d)
	}
	t.Logf("answered %v after the call, the service started at 2s", time.Since(start).Round(time.Millisecond))
}

// With no service the call returns 504 after its timeout, naming the
// service and topic, and a service started afterwards does not execute it.
func testServiceNeverStarts(t *testing.T, env conformance.Env) {
	url, _ := startGateway(t, env.Client(t, conformance.Options{}))
	start := time.Now()
	r := do(t, "POST", url+"/v1/echo", strings.NewReader(`{"message":"expired","key":"k"}`), "Grpc-Timeout", "1S")
	took := time.Since(start)
	expectStatus(t, r, 504)
	if took < time.Second || took > 3*time.Second {
		t.Errorf("504 after %v, want about 1s", took)
	}
	svc := echoContract()
	e := r.err(t)
	mustContain(t, "message", e.Message, svc.Name, "/purista.testing.v1.EchoService/Echo", r.Header.Get("X-Request-Id"))
	if len(e.Details) != 1 || !bytes.Contains(e.Details[0], []byte(gateway.ReasonNoAnswer)) {
		t.Errorf("504 without the %s detail: %s", gateway.ReasonNoAnswer, r.Body)
	}
	for _, internal := range []string{svc.RequestTopic, purista.DefaultRequestTopic(svc.Name), "127.0.0.1"} {
		if internal != "" && strings.Contains(e.Message, internal) {
			t.Errorf("504 message %q shows %q", e.Message, internal)
		}
	}
	t.Logf("504: %s", e.Message)

	// Now the service starts; a call with the same partition key, sent
	// after, is answered, so the service has passed the expired request.
	echo := &conformance.EchoServer{Name: "after"}
	startServer(t, env, echo)
	r = do(t, "POST", url+"/v1/echo", strings.NewReader(`{"message":"fresh","key":"k"}`), "Grpc-Timeout", "20S")
	expectStatus(t, r, 200)
	if got := echo.Messages(); slices.Contains(got, "expired") || !slices.Equal(got, []string{"fresh"}) {
		t.Errorf("service executed %q, want only [fresh]", got)
	}
}

func startServer(t testing.TB, env conformance.Env, echo *conformance.EchoServer) {
	t.Helper()
	srv := env.Server(t, conformance.Options{})
	testingv1.RegisterEchoServiceServer(srv, echo)
	srv.Start(t)
	t.Cleanup(srv.Stop)
}

// inprocEnv runs the tests over the in-process transport.
type inprocEnv struct{ ch *inproc.Channel }

type inprocServer struct{ *inproc.Server }

func (inprocServer) Start(testing.TB) {}
func (inprocServer) Stop()            {}

func (e inprocEnv) Client(testing.TB, conformance.Options) grpc.ClientConnInterface {
	return e.ch.NewClient(inproc.WithContracts(conformance.Contracts()...))
}

func (e inprocEnv) Server(testing.TB, conformance.Options) conformance.Server {
	return inprocServer{e.ch.NewServer(inproc.WithLogger(quietLogger()), inproc.WithContracts(conformance.Contracts()...))}
}

func newInprocEnv(t testing.TB) conformance.Env {
	ch := inproc.New(inproc.WithContracts(conformance.Contracts()...))
	t.Cleanup(func() { _ = ch.Close() })
	return inprocEnv{ch}
}

func TestStartOrderInproc(t *testing.T) {
	t.Run("ServiceStartsLater", func(t *testing.T) { testServiceStartsLater(t, newInprocEnv(t)) })
	t.Run("ServiceNeverStarts", func(t *testing.T) { testServiceNeverStarts(t, newInprocEnv(t)) })
}

// An HTTP client retrying an idempotent method with the same
// Idempotency-Key gets the stored answer; the method runs once.
func TestIdempotencyKeyForwarded(t *testing.T) {
	env := newInprocEnv(t)
	echo := &conformance.EchoServer{Name: "s"}
	startServer(t, env, echo)
	url, _ := startGateway(t, env.Client(t, conformance.Options{}))
	for range 2 {
		r := do(t, "POST", url+"/v1/count", strings.NewReader(`{}`), "Idempotency-Key", "order-42")
		expectStatus(t, r, 200)
		mustContain(t, "body", string(r.Body), `"count":"1"`)
	}
	r := do(t, "POST", url+"/v1/count", strings.NewReader(`{}`), "Idempotency-Key", "order-43")
	mustContain(t, "body", string(r.Body), `"count":"2"`)
	if n := echo.Calls(); n != 2 {
		t.Errorf("Count ran %d times, want 2", n)
	}
}
