package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/purista-go/purista/ops"
)

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ops_test_total", Help: "A counter of the test."})
	reg.MustRegister(c)
	c.Add(3)
	var broken error
	hs := httptest.NewServer(ops.Handler(reg,
		ops.CheckerFunc(func(context.Context) error { return nil }),
		ops.CheckerFunc(func(context.Context) error { return broken })))
	defer hs.Close()

	if code, body := get(t, http.MethodGet, hs.URL+ops.PathHealth); code != 200 || body != `{"status":"ok"}` {
		t.Errorf("healthz = %d %s", code, body)
	}
	if code, body := get(t, http.MethodGet, hs.URL+ops.PathReady); code != 200 || body != `{"status":"ready"}` {
		t.Errorf("readyz while ready = %d %s", code, body)
	}
	broken = errors.New("kafka: request topics missing: purista.rpc.x")
	code, body := get(t, http.MethodGet, hs.URL+ops.PathReady)
	var r struct {
		Status string   `json:"status"`
		Errors []string `json:"errors"`
	}
	if code != 503 || json.Unmarshal([]byte(body), &r) != nil || r.Status != "unavailable" || len(r.Errors) != 1 || r.Errors[0] != broken.Error() {
		t.Errorf("readyz with a failing check = %d %s", code, body)
	}
	if code, body := get(t, http.MethodGet, hs.URL+ops.PathMetrics); code != 200 || !strings.Contains(body, "ops_test_total 3") {
		t.Errorf("metrics = %d %s", code, body)
	}
	if code, _ := get(t, http.MethodPost, hs.URL+ops.PathHealth); code != 405 {
		t.Errorf("POST healthz = %d, want 405", code)
	}
	if code, _ := get(t, http.MethodGet, hs.URL+"/nothing"); code != 404 {
		t.Errorf("GET /nothing = %d, want 404", code)
	}
}

// A check that does not answer is cut off by ReadyTimeout: /readyz answers.
func TestReadyTimeout(t *testing.T) {
	hs := httptest.NewServer(ops.Handler(nil, ops.CheckerFunc(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})))
	defer hs.Close()
	if code, body := get(t, http.MethodGet, hs.URL+ops.PathReady); code != 503 || !strings.Contains(body, "deadline exceeded") {
		t.Errorf("readyz with a hanging check = %d %s", code, body)
	}
}
