package gateway_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/purista-go/purista/gateway"
)

func TestServeShutsDownGracefully(t *testing.T) {
	cc, _ := startGRPC(t)
	g, err := gateway.New(cc, gateway.WithServices(echoService()), gateway.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- gateway.ListenAndServe(ctx, "127.0.0.1:0", g,
			gateway.WithOnListen(func(a net.Addr) { addrc <- a }),
			gateway.WithDrainDelay(300*time.Millisecond))
	}()
	url := "http://" + (<-addrc).String()
	expectStatus(t, do(t, "GET", url+"/readyz", nil), 200)

	// A slow request is in flight when shutdown begins.
	slow := make(chan response, 1)
	go func() { slow <- do(t, "GET", url+"/v1/sleep?duration=1s", nil) }()
	time.Sleep(200 * time.Millisecond)
	cancel()

	// During the drain delay the gateway still serves, but is not ready.
	time.Sleep(100 * time.Millisecond)
	r := do(t, "GET", url+"/readyz", nil)
	expectStatus(t, r, 503)

	r = <-slow
	expectStatus(t, r, 200)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	// New connections are refused, and the client conn is closed.
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("gateway still accepts connections")
	}
	if s := cc.GetState(); s != connectivity.Shutdown {
		t.Errorf("client conn state %v, want Shutdown", s)
	}
}

func TestServeShutdownTimeout(t *testing.T) {
	cc, _ := startGRPC(t)
	g, err := gateway.New(cc, gateway.WithServices(echoService()), gateway.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateway.Serve(ctx, ln, g, gateway.WithShutdownTimeout(200*time.Millisecond)) }()
	go func() { _, _ = http.Get("http://" + ln.Addr().String() + "/v1/sleep?duration=2s") }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("Serve returned %v", err)
	}
}
