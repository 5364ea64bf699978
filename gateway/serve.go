package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// ServeOption configures Serve and ListenAndServe.
type ServeOption func(*serveConfig)

type serveConfig struct {
	shutdownTimeout time.Duration
	drainDelay      time.Duration
	server          *http.Server
	ready           func(net.Addr)
}

// WithShutdownTimeout bounds how long shutdown waits for in-flight requests
// (default 30 s); requests still running then are cut off.
func WithShutdownTimeout(d time.Duration) ServeOption {
	return func(c *serveConfig) { c.shutdownTimeout = d }
}

// WithDrainDelay keeps accepting requests for d after shutdown began while
// /readyz already fails, so that load balancers notice before the listener
// closes (default 0).
func WithDrainDelay(d time.Duration) ServeOption {
	return func(c *serveConfig) { c.drainDelay = d }
}

// WithHTTPServer uses srv's settings (timeouts, TLS, error log); its Handler
// is replaced.
func WithHTTPServer(srv *http.Server) ServeOption {
	return func(c *serveConfig) { c.server = srv }
}

// WithOnListen is called with the listening address once the server accepts
// connections; useful with ":0".
func WithOnListen(f func(net.Addr)) ServeOption {
	return func(c *serveConfig) { c.ready = f }
}

// ListenAndServe listens on addr and calls Serve.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, opts ...ServeOption) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", addr, err)
	}
	return Serve(ctx, ln, h, opts...)
}

// Serve serves h on ln until ctx ends, then shuts down gracefully: it drains
// h (a *Gateway's /readyz starts failing), waits the drain delay, stops
// accepting connections, waits for in-flight requests to finish within the
// shutdown timeout, and then closes h if it is an io.Closer — a *Gateway
// closes its client connection. It returns nil after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, opts ...ServeOption) error {
	c := serveConfig{shutdownTimeout: 30 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	// Bounds against slow and idle clients. A request body's deadline and
	// a response's are set per request by the Gateway (WithBodyReadTimeout,
	// the call's deadline), not here: http.Server's ReadTimeout and
	// WriteTimeout would also end server streams and long calls.
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if c.server != nil {
		srv = c.server
	}
	srv.Handler = h
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if c.ready != nil {
		c.ready(ln.Addr())
	}

	var serveErr error
	select {
	case serveErr = <-errc:
		// The server failed on its own; still release the handler.
	case <-ctx.Done():
	}
	if d, ok := h.(interface{ Drain() }); ok {
		d.Drain()
	}
	var errs []error
	if serveErr == nil {
		if c.drainDelay > 0 {
			time.Sleep(c.drainDelay)
		}
		sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
		err := srv.Shutdown(sctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("gateway: in-flight requests did not finish within %v: %w", c.shutdownTimeout, err))
			_ = srv.Close()
		}
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	} else if !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, serveErr)
	}
	if cl, ok := h.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gateway: closing: %w", err))
		}
	}
	return errors.Join(errs...)
}
