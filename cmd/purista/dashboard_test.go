package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/purista-go/purista/internal/devdash"
)

// chromium returns the headless browser the dashboard test drives: the
// Debian package's /usr/bin/chromium, or PURISTA_CHROMIUM. The test runs
// under make dashboard (PURISTA_REQUIRE_CHROMIUM=1), which fails without a
// browser; elsewhere it skips, so make test does not run it twice in CI.
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("PURISTA_REQUIRE_CHROMIUM") != "1" {
		t.Skip("runs under make dashboard (PURISTA_REQUIRE_CHROMIUM=1)")
	}
	for _, p := range []string{os.Getenv("PURISTA_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium: install the Debian package chromium (apt-get install chromium) or set PURISTA_CHROMIUM")
	return ""
}

// runChromium runs headless Chromium with a fresh profile and the given
// extra flags on url, bounded in time, and returns its standard output.
func runChromium(t *testing.T, exe, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--window-size=1400,1400", "--virtual-time-budget=8000"}, extra...)
	cmd := exec.CommandContext(ctx, exe, append(args, url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, errb.String())
	}
	return out.String()
}

var dashboardRE = regexp.MustCompile(`dashboard (http://127\.0\.0\.1:\d+)`)

// TestDevDashboard runs `purista dev` on the example system, makes a call
// that crosses two services (an order: gateway → orders → users) and opens
// the dashboard in headless Chromium: the page lists the call with its
// request id, draws its trace across gateway, Kafka and both services, and
// shows the services' instances and the topics' lag. A screenshot of it is
// written to PURISTA_SCREENSHOT (make dashboard: .cache/dashboard.png).
func TestDevDashboard(t *testing.T) {
	browser := chromium(t)
	p := startDev(t, "../../examples", "Ctrl-C stops everything", "--image", image(t))
	out := p.output()
	m, d := readyRE.FindStringSubmatch(out), dashboardRE.FindStringSubmatch(out)
	if m == nil || d == nil {
		t.Fatalf("no ready or dashboard line:\n%s", out)
	}
	gw, dash := m[2], d[1]

	post := func(path, body, rid string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, gw+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", rid)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var v map[string]any
		if res.StatusCode != 200 || json.Unmarshal(b, &v) != nil {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
		}
		return v
	}
	rid := fmt.Sprintf("dashboard-test-%d", time.Now().UnixNano())
	user := post("/v1/users", `{"email":"grace@example.com","display_name":"Grace Hopper"}`, rid+"-user")
	uid, _ := user["user"].(map[string]any)["userId"].(string)
	post("/v1/users/"+uid+"/orders", `{"items":[{"sku":"purista-mug","quantity":1,"unit_price_cents":1250}]}`, rid)

	// The processes export their spans in batches: wait, bounded, for the
	// call and its whole trace to reach the dashboard.
	var call devdash.Call
	var spans []devdash.Span
	services := map[string]bool{}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var calls []devdash.Call
		getJSON(t, dash+"/api/calls", &calls)
		for _, c := range calls {
			if c.RequestID == rid {
				call = c
			}
		}
		if call.TraceID != "" {
			getJSON(t, dash+"/api/traces/"+call.TraceID, &spans)
			clear(services)
			for _, s := range spans {
				services[s.Service] = true
			}
		}
		if services["gateway"] && services["orders"] && services["users"] && services["notifications"] || time.Now().After(deadline) {
			break
		}
	}
	if !services["gateway"] || !services["orders"] || !services["users"] || !services["notifications"] {
		t.Fatalf("the dashboard has call %+v with spans of %v, want gateway, orders, users and notifications (the event's subscriber)", call, services)
	}

	page := dash + "/#trace=" + call.TraceID
	dom := runChromium(t, browser, page, "--dump-dom")
	for _, want := range []string{
		rid, // the call's row
		"POST /v1/users/{user_id}/orders",
		"orders.v1.OrdersService/CreateOrder",
		"process purista.rpc.users.v1.UsersService",
		"send purista.event.orders.v1.OrderPlaced",
		"↳ linked event",                      // the subscriber's trace
		`class="svc">users<`,                  // a waterfall row of the users process
		"purista.rpc.orders.v1.OrdersService", // the topics table
		"purista.orders.v1.OrdersService",     // the orders group
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(dom, `class="wf-row"`); n < 12 {
		t.Errorf("the waterfall has %d rows, want the call's 12 spans and the event's", n)
	}
	if !regexp.MustCompile(`<td class="ok">running</td>`).MatchString(dom) {
		t.Errorf("the page shows no running process")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	shot := os.Getenv("PURISTA_SCREENSHOT") // make dashboard: .cache/dashboard.png
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "dashboard.png")
	}
	_ = os.MkdirAll(filepath.Dir(shot), 0o755)
	_ = os.Remove(shot)
	runChromium(t, browser, page, "--screenshot="+shot, "--hide-scrollbars")
	if b, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) || len(b) < 10000 {
		t.Fatalf("no screenshot in %s (%d bytes, %v)", shot, len(b), err)
	}
	t.Logf("screenshot: %s", shot)
	p.interrupt(t)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
