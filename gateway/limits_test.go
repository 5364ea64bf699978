package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/purista-go/purista/gateway"
)

// A client that trickles its body is answered 408 once the body read
// timeout passes, and its connection is closed: it does not hold a
// connection and a request slot for as long as it likes.
func TestSlowBodyIsCutOff(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithBodyReadTimeout(300*time.Millisecond))
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	// One byte per 100 ms, as the tester's clients did (slower, even).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to a trickled body: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	took := time.Since(start)
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408; body %s", res.StatusCode, body)
	}
	if took > 2*time.Second {
		t.Errorf("cut off after %v, want about 300ms", took)
	}
	mustContain(t, "message", string(body), "did not arrive within 300ms")
	// The server closes the connection rather than read the rest.
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("connection not closed after the 408: %v", err)
		}
	}
	if n := echo.Calls(); n != 0 {
		t.Errorf("service called %d times for a body that never arrived", n)
	}
}

// The body limit defaults to what a Kafka broker takes in one record, and a
// body over it is 413, with or without Content-Length.
func TestDefaultBodyLimitFitsTheBroker(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc)
	if gateway.DefaultMaxBodyBytes >= 1<<20 {
		t.Fatalf("DefaultMaxBodyBytes %d does not fit a broker's default 1 MiB records", gateway.DefaultMaxBodyBytes)
	}
	big := `{"message":"` + strings.Repeat("x", gateway.DefaultMaxBodyBytes) + `"}`
	r := do(t, "POST", url+"/v1/echo", strings.NewReader(big)) // Content-Length set
	expectStatus(t, r, 413)
	mustContain(t, "message", r.err(t).Message, fmt.Sprint(gateway.DefaultMaxBodyBytes))
	// Chunked: the limit is found while reading.
	r = do(t, "POST", url+"/v1/echo", io.MultiReader(strings.NewReader(big)))
	expectStatus(t, r, 413)
	if n := echo.Calls(); n != 0 {
		t.Errorf("service called %d times for bodies over the limit", n)
	}
	// Below the limit the same route works.
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{"message":"`+strings.Repeat("x", 512<<10)+`"}`)), 200)
}

// A request message larger than the limit is 413 even when its body is not:
// here the bytes come from the query string.
func TestRequestMessageOverLimitIs413(t *testing.T) {
	cc, echo := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithMaxBodyBytes(64))
	r := do(t, "GET", url+"/v1/fail/5?message="+strings.Repeat("m", 200), nil)
	expectStatus(t, r, 413)
	mustContain(t, "message", r.err(t).Message, "limit of 64 bytes")
	if n := echo.Calls(); n != 0 {
		t.Errorf("service called %d times", n)
	}
}

// Over the concurrency cap a request is refused at once with 503 and
// Retry-After; the requests already admitted finish.
func TestConcurrencyCap(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, cc, gateway.WithMaxConcurrentRequests(2))
	var wg sync.WaitGroup
	slow := make([]response, 2)
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slow[i] = do(t, "GET", url+"/v1/sleep?duration=1s", nil)
		}()
	}
	// Wait until both are in the gateway.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := do(t, "GET", url+"/metrics", nil)
		if bytes.Contains(m.Body, []byte("purista_gateway_http_requests_in_flight 2")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two slow requests never were in flight together:\n%s", m.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	r := do(t, "POST", url+"/v1/echo", strings.NewReader(`{"message":"third"}`))
	expectStatus(t, r, 503)
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %v", r.Header)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("refused after %v, want at once", d)
	}
	mustContain(t, "message", r.err(t).Message, "maximum of 2 requests")
	wg.Wait()
	for _, s := range slow {
		expectStatus(t, s, 200)
	}
	expectStatus(t, do(t, "POST", url+"/v1/echo", strings.NewReader(`{"message":"later"}`)), 200)
}

// slowConn delays every call, standing in for a service that takes its time.
type slowConn struct {
	grpc.ClientConnInterface
	delay time.Duration
}

func (c slowConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

// The body deadline ends with the body: a call that runs longer than the
// body read timeout after its body arrived is not cut off.
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	cc, _ := startGRPC(t)
	url, _ := startGateway(t, slowConn{cc, 700 * time.Millisecond}, gateway.WithBodyReadTimeout(200*time.Millisecond))
	r := do(t, "POST", url+"/v1/echo", strings.NewReader(`{"message":"patient"}`))
	expectStatus(t, r, 200)
	mustContain(t, "body", string(r.Body), "patient")
}
