package conformance

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/purista-go/purista"
	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
)

// Options configure the clients and servers an Env makes.
type Options struct {
	ClientInterceptors []grpc.UnaryClientInterceptor
	ServerInterceptors []grpc.UnaryServerInterceptor
	// DefaultTimeout for calls without a deadline whose contract names none;
	// zero means the transport's default.
	DefaultTimeout time.Duration
}

// Server is a transport's server as the suite drives it.
type Server interface {
	grpc.ServiceRegistrar
	// Start serves in the background and returns at once.
	Start(t testing.TB)
	// Stop stops serving gracefully and waits for in-flight calls.
	Stop()
}

// Env is one isolated system: its clients reach only its servers.
type Env interface {
	Client(t testing.TB, o Options) grpc.ClientConnInterface
	Server(t testing.TB, o Options) Server
}

// Run runs the suite. newEnv is called once per test.
func Run(t *testing.T, newEnv func(t testing.TB) Env) {
	tests := []struct {
		name string
		fn   func(t *testing.T, env Env)
	}{
		{"RoundTrip", testRoundTrip},
		{"Metadata", testMetadata},
		{"Status", testStatus},
		{"Panic", testPanic},
		{"DeadlinePropagates", testDeadlinePropagates},
		{"ContractTimeout", testContractTimeout},
		{"DeadlineExceeded", testDeadlineExceeded},
		{"Interceptors", testInterceptors},
		{"Validation", testValidation},
		{"NoOutgoingLeak", testNoOutgoingLeak},
		{"UnknownMethod", testUnknownMethod},
		{"NoContract", testNoContract},
		{"Idempotency", testIdempotency},
		{"KeyedCalls", testKeyedCalls},
		{"ServerStartsLater", testServerStartsLater},
		{"ExpiredWhileWaiting", testExpiredWhileWaiting},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newEnv(t)) })
	}
}

func serve(t testing.TB, env Env, o Options, impl *EchoServer) Server {
	srv := env.Server(t, o)
	testingv1.RegisterEchoServiceServer(srv, impl)
	srv.Start(t)
	t.Cleanup(srv.Stop)
	return srv
}

func setup(t testing.TB, env Env) (testingv1.EchoServiceClient, *EchoServer) {
	impl := &EchoServer{Name: "s1"}
	serve(t, env, Options{}, impl)
	return testingv1.NewEchoServiceClient(env.Client(t, Options{})), impl
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func testRoundTrip(t *testing.T, env Env) {
	c, impl := setup(t, env)
	for _, size := range []int{0, 256, 64 << 10} {
		payload := bytes.Repeat([]byte{0xa5}, size)
		msg := fmt.Sprintf("héllo-%d", size)
		resp, err := c.Echo(ctxTimeout(t, 20*time.Second), &testingv1.EchoRequest{Message: msg, Payload: payload})
		if err != nil {
			t.Fatalf("Echo(%d bytes): %v", size, err)
		}
		if resp.GetMessage() != msg || !bytes.Equal(resp.GetPayload(), payload) || resp.GetServer() != "s1" {
			t.Fatalf("Echo(%d bytes) = %q/%d bytes/%q, want %q/%d bytes/s1", size, resp.GetMessage(), len(resp.GetPayload()), resp.GetServer(), msg, size)
		}
	}
	if got := impl.Calls(); got != 3 {
		t.Fatalf("handler ran %d times, want 3", got)
	}
}

func testMetadata(t *testing.T, env Env) {
	c, impl := setup(t, env)
	ctx := metadata.AppendToOutgoingContext(ctxTimeout(t, 20*time.Second),
		"echo-a", "1", "echo-a", "2", "x-user", "alice", "blob-bin", string([]byte{0, 1, 0xff}))
	var hdr, trl metadata.MD
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "md"}, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	in := impl.LastMetadata()
	if got := in.Get("x-user"); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("handler saw x-user=%q, want [alice]", got)
	}
	if got := in.Get("echo-a"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("handler saw echo-a=%q, want [1 2]", got)
	}
	if got := in.Get("blob-bin"); len(got) != 1 || got[0] != string([]byte{0, 1, 0xff}) {
		t.Errorf("handler saw blob-bin=%q, want the raw bytes 00 01 ff", got)
	}
	if got := hdr.Get("echo-a"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("response header echo-a=%q, want [1 2]", got)
	}
	if got := trl.Get("echo-a-trailer"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("response trailer echo-a-trailer=%q, want [1 2]", got)
	}
}

func testStatus(t *testing.T, env Env) {
	c, _ := setup(t, env)
	for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
		msg := fmt.Sprintf("failed with %v: ünïcode", code)
		_, err := c.Fail(ctxTimeout(t, 20*time.Second), &testingv1.FailRequest{Code: int32(code), Message: msg, Reason: "R_" + code.String()})
		st := status.Convert(err)
		if st.Code() != code || st.Message() != msg {
			t.Errorf("Fail(%v) = %v %q, want %v %q", code, st.Code(), st.Message(), code, msg)
			continue
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if e, ok := d.(*errdetails.ErrorInfo); ok {
				info = e
			}
		}
		if info == nil || info.GetReason() != "R_"+code.String() || info.GetMetadata()["k"] != "v" {
			t.Errorf("Fail(%v) details = %v, want an ErrorInfo with reason R_%v", code, st.Details(), code)
		}
	}
}

func testPanic(t *testing.T, env Env) {
	c, _ := setup(t, env)
	_, err := c.Panic(ctxTimeout(t, 20*time.Second), &testingv1.PanicRequest{})
	if status.Code(err) != codes.Internal {
		t.Fatalf("Panic = %v, want INTERNAL", err)
	}
	if _, err := c.Echo(ctxTimeout(t, 20*time.Second), &testingv1.EchoRequest{Message: "after panic"}); err != nil {
		t.Fatalf("Echo after a panic: %v (the server must keep serving)", err)
	}
}

func testDeadlinePropagates(t *testing.T, env Env) {
	c, _ := setup(t, env)
	resp, err := c.Sleep(ctxTimeout(t, 8*time.Second), &testingv1.SleepRequest{})
	if err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	if left := resp.GetDeadlineLeft().AsDuration(); resp.GetDeadlineLeft() == nil || left <= 0 || left > 8*time.Second {
		t.Fatalf("handler deadline left = %v, want within (0, 8s]", resp.GetDeadlineLeft())
	}
}

func testContractTimeout(t *testing.T, env Env) {
	c, _ := setup(t, env)
	// Sleep's contract declares a 3 s timeout; the call has no deadline.
	resp, err := c.Sleep(context.Background(), &testingv1.SleepRequest{})
	if err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	if left := resp.GetDeadlineLeft().AsDuration(); resp.GetDeadlineLeft() == nil || left <= 0 || left > 3*time.Second {
		t.Fatalf("handler deadline left = %v, want within (0, 3s] from the contract's timeout", resp.GetDeadlineLeft())
	}
}

func testDeadlineExceeded(t *testing.T, env Env) {
	c, _ := setup(t, env)
	// Warm up so the measured call does not include server start-up.
	if _, err := c.Echo(ctxTimeout(t, 20*time.Second), &testingv1.EchoRequest{Message: "warm"}); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	start := time.Now()
	_, err := c.Sleep(ctxTimeout(t, 300*time.Millisecond), &testingv1.SleepRequest{Duration: durationpb.New(10 * time.Second)})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Sleep past the deadline = %v, want DEADLINE_EXCEEDED", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("DEADLINE_EXCEEDED came after %v, want soon after the 300ms deadline", el)
	}
}

func testInterceptors(t *testing.T, env Env) {
	var mu sync.Mutex
	var seen []string
	impl := &EchoServer{Name: "s1"}
	serve(t, env, Options{ServerInterceptors: []grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			mu.Lock()
			seen = append(seen, "outer:"+info.FullMethod)
			mu.Unlock()
			return h(ctx, req)
		},
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			mu.Lock()
			seen = append(seen, "inner")
			mu.Unlock()
			if r, ok := req.(*testingv1.EchoRequest); ok && r.GetMessage() == "deny" {
				return nil, status.Error(codes.PermissionDenied, "denied by interceptor")
			}
			return h(ctx, req)
		},
	}}, impl)
	conn := env.Client(t, Options{ClientInterceptors: []grpc.UnaryClientInterceptor{
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return inv(metadata.AppendToOutgoingContext(ctx, "x-from-interceptor", method), method, req, reply, cc, opts...)
		},
	}})
	c := testingv1.NewEchoServiceClient(conn)
	if _, err := c.Echo(ctxTimeout(t, 20*time.Second), &testingv1.EchoRequest{Message: "hi"}); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if got := impl.LastMetadata().Get("x-from-interceptor"); !slices.Equal(got, []string{testingv1.EchoService_Echo_FullMethodName}) {
		t.Errorf("client interceptor metadata = %q, want the method name", got)
	}
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	if want := []string{"outer:" + testingv1.EchoService_Echo_FullMethodName, "inner"}; !slices.Equal(got, want) {
		t.Errorf("server interceptors ran %q, want %q", got, want)
	}
	_, err := c.Echo(ctxTimeout(t, 20*time.Second), &testingv1.EchoRequest{Message: "deny"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("Echo(deny) = %v, want PERMISSION_DENIED from the interceptor", err)
	}
	if n := impl.Calls(); n != 1 {
		t.Errorf("handler ran %d times, want 1 (the denied call must not reach it)", n)
	}
}

func testUnknownMethod(t *testing.T, env Env) {
	_, _ = setup(t, env)
	conn := env.Client(t, Options{})
	err := conn.Invoke(ctxTimeout(t, 20*time.Second), "/purista.testing.v1.EchoService/NoSuchMethod", &testingv1.EchoRequest{}, &testingv1.EchoResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method = %v, want UNIMPLEMENTED", err)
	}
}

// testNoContract calls a service the client was handed no contract for:
// every transport refuses it at once, the same way, instead of guessing
// its topic and dropping its timeout and key.
func testNoContract(t *testing.T, env Env) {
	conn := env.Client(t, Options{})
	err := conn.Invoke(ctxTimeout(t, 20*time.Second), "/purista.testing.v1.NoContractService/Call", &testingv1.EchoRequest{}, &testingv1.EchoResponse{})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "WithContracts") {
		t.Fatalf("call without a contract = %v, want FAILED_PRECONDITION naming the WithContracts option", err)
	}
}

func testIdempotency(t *testing.T, env Env) {
	c, impl := setup(t, env)
	count := func(key string) int64 {
		t.Helper()
		ctx := metadata.AppendToOutgoingContext(ctxTimeout(t, 20*time.Second), "idempotency-key", key)
		resp, err := c.Count(ctx, &testingv1.CountRequest{})
		if err != nil {
			t.Fatalf("Count(%s): %v", key, err)
		}
		return resp.GetCount()
	}
	a1 := count("op-a")
	a2 := count("op-a")
	b := count("op-b")
	if a1 != a2 {
		t.Errorf("same idempotency key counted twice: %d then %d", a1, a2)
	}
	if b != a1+1 {
		t.Errorf("new key gave count %d, want %d", b, a1+1)
	}
	if n := impl.Calls(); n != 2 {
		t.Errorf("handler ran %d times for 3 calls with 2 keys, want 2", n)
	}
}

// testKeyedCalls: a call with an idempotency key runs once per key, on any
// method, and its answer — an error that is not transient too — answers a
// repeat; a keyed call answered UNAVAILABLE is retried as the default
// policy allows (5 tries), an unkeyed one never.
func testKeyedCalls(t *testing.T, env Env) {
	c, impl := setup(t, env)
	ctx := ctxTimeout(t, 30*time.Second)
	keyed := func(key string) context.Context { return purista.WithIdempotencyKey(ctx, key) }

	for range 2 {
		resp, err := c.Echo(keyed("echo-once"), &testingv1.EchoRequest{Message: "once"})
		if err != nil || resp.GetMessage() != "once" {
			t.Fatalf("keyed Echo = %v, %v", resp, err)
		}
	}
	if n := impl.Calls(); n != 1 {
		t.Errorf("Echo with one key twice ran %d times, want 1", n)
	}
	refused := &testingv1.FailRequest{Code: int32(codes.FailedPrecondition), Message: "not now"}
	for range 2 {
		if _, err := c.Fail(keyed("fail-once"), refused); status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != "not now" {
			t.Fatalf("keyed Fail = %v, want FAILED_PRECONDITION \"not now\"", err)
		}
	}
	if n := impl.Calls(); n != 2 {
		t.Errorf("Fail with one key twice ran %d times, want 1", n-1)
	}

	unavailable := &testingv1.FailRequest{Code: int32(codes.Unavailable), Message: "try later"}
	if _, err := c.Fail(ctx, unavailable); status.Code(err) != codes.Unavailable {
		t.Fatalf("unkeyed Fail = %v, want UNAVAILABLE", err)
	}
	if n := impl.Calls(); n != 3 {
		t.Errorf("unkeyed UNAVAILABLE call ran %d times, want 1: it must not be retried", n-2)
	}
	if _, err := c.Fail(keyed("retried"), unavailable); status.Code(err) != codes.Unavailable {
		t.Fatalf("keyed Fail = %v, want UNAVAILABLE after the retries", err)
	}
	if n, want := impl.Calls()-3, int64(purista.DefaultRetryPolicy().MaxAttempts); n != want {
		t.Errorf("keyed UNAVAILABLE call ran %d times, want %d (the default policy's tries)", n, want)
	}
}

func testServerStartsLater(t *testing.T, env Env) {
	c := testingv1.NewEchoServiceClient(env.Client(t, Options{}))
	const n = 5
	errs := make(chan error, n)
	for i := range n {
		go func() {
			msg := fmt.Sprintf("early-%d", i)
			resp, err := c.Echo(ctxTimeout(t, 30*time.Second), &testingv1.EchoRequest{Message: msg})
			if err == nil && resp.GetMessage() != msg {
				err = fmt.Errorf("got %q, want %q", resp.GetMessage(), msg)
			}
			errs <- err
		}()
	}
	time.Sleep(2 * time.Second)
	impl := &EchoServer{Name: "late"}
	serve(t, env, Options{}, impl)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("call sent before the server started: %v", err)
		}
	}
}

func testExpiredWhileWaiting(t *testing.T, env Env) {
	c := testingv1.NewEchoServiceClient(env.Client(t, Options{}))
	_, err := c.Echo(ctxTimeout(t, 500*time.Millisecond), &testingv1.EchoRequest{Message: "expired"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call with no server = %v, want DEADLINE_EXCEEDED", err)
	}
	impl := &EchoServer{Name: "late"}
	serve(t, env, Options{}, impl)
	// A call sent now is behind the expired one in the topic: once it is
	// answered, the server has passed the expired request.
	if _, err := c.Echo(ctxTimeout(t, 30*time.Second), &testingv1.EchoRequest{Message: "fresh"}); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if got := impl.Messages(); slices.Contains(got, "expired") {
		t.Fatalf("server executed %q: a request whose deadline passed while waiting must not run", got)
	}
}

func testConcurrent(t *testing.T, env Env) {
	c, _ := setup(t, env)
	const total, inflight = 300, 32
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for i := range total {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			msg := fmt.Sprintf("m-%d", i)
			resp, err := c.Echo(ctxTimeout(t, 30*time.Second), &testingv1.EchoRequest{Message: msg, Key: fmt.Sprint(i % 7)})
			if err == nil && resp.GetMessage() != msg {
				err = fmt.Errorf("call %s answered with %q", msg, resp.GetMessage())
			}
			if err != nil {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d concurrent calls failed; first: %v", len(failures), total, failures[0])
	}
}

// testNoOutgoingLeak checks a handler's context does not carry the caller's
// outgoing metadata: a handler calling on must not resend it.
func testNoOutgoingLeak(t *testing.T, env Env) {
	var leaked metadata.MD
	impl := &EchoServer{Name: "s1"}
	serve(t, env, Options{ServerInterceptors: []grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			leaked, _ = metadata.FromOutgoingContext(ctx)
			return h(ctx, req)
		},
	}}, impl)
	c := testingv1.NewEchoServiceClient(env.Client(t, Options{}))
	ctx := metadata.AppendToOutgoingContext(ctxTimeout(t, 20*time.Second), "x-caller-only", "secret")
	if _, err := c.Echo(ctx, &testingv1.EchoRequest{Message: "hi"}); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if len(leaked) > 0 {
		t.Fatalf("handler context carries the caller's outgoing metadata %v", leaked)
	}
	if got := impl.LastMetadata().Get("x-caller-only"); len(got) != 1 {
		t.Fatalf("incoming metadata x-caller-only = %q, want the caller's value", got)
	}
}

// testValidation: a request that breaks its contract's protovalidate rules
// is refused with INVALID_ARGUMENT and a google.rpc.BadRequest detail naming
// each field, before any interceptor or the handler runs.
func testValidation(t *testing.T, env Env) {
	impl := &EchoServer{Name: "s1"}
	var intercepted atomic.Int64
	serve(t, env, Options{ServerInterceptors: []grpc.UnaryServerInterceptor{
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			intercepted.Add(1)
			return h(ctx, req)
		},
	}}, impl)
	c := testingv1.NewEchoServiceClient(env.Client(t, Options{}))
	_, err := c.Echo(ctxTimeout(t, 20*time.Second), &testingv1.EchoRequest{Message: "long key", Key: strings.Repeat("k", 65)})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "key") {
		t.Fatalf("Echo with a 65-character key = %v, want INVALID_ARGUMENT naming the field key", err)
	}
	if got := FieldViolations(err); !slices.Equal(got, []string{"key: string.max_len"}) {
		t.Errorf("Echo with a 65-character key: field violations %v, want [key: string.max_len]", got)
	}
	_, err = c.Fail(ctxTimeout(t, 20*time.Second), &testingv1.FailRequest{Code: 99})
	if status.Code(err) != codes.InvalidArgument || len(FieldViolations(err)) != 1 || !strings.HasPrefix(FieldViolations(err)[0], "code: ") {
		t.Errorf("Fail with code 99 = %v %v, want INVALID_ARGUMENT with one violation of field code", err, FieldViolations(err))
	}
	if n, m := impl.Calls(), intercepted.Load(); n != 0 || m != 0 {
		t.Errorf("invalid requests reached %d handlers and %d interceptors, want none", n, m)
	}
	if _, err := c.Echo(ctxTimeout(t, 20*time.Second), &testingv1.EchoRequest{Message: "ok", Key: strings.Repeat("k", 64)}); err != nil {
		t.Fatalf("Echo with a 64-character key: %v", err)
	}
}

// FieldViolations lists the google.rpc.BadRequest field violations of a
// status error as "field: reason".
func FieldViolations(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField()+": "+v.GetReason())
			}
		}
	}
	return out
}
