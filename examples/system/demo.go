package system

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Step is one HTTP request of the demo: what `make demo` sends and prints,
// and what the end-to-end tests check, in both deployment styles.
type Step struct {
	// Title says what the step shows.
	Title string
	// Method and Path of the request; Path may hold {name} placeholders
	// filled from values earlier steps saved.
	Method, Path string
	// Body is the JSON request body, "" for none.
	Body string
	// Status is the HTTP status the step expects.
	Status int
	// Check verifies the decoded JSON reply and may save values for later
	// steps in vars.
	Check func(reply map[string]any, vars map[string]string) error
	// Within, when set, repeats the request until Check passes, for at most
	// this long: for what an event brings about, a moment after the call
	// that published it returned.
	Within time.Duration
}

// Exchange is a request the demo sent and the reply it got.
type Exchange struct {
	Step   Step
	URL    string // the request URL with placeholders filled
	Body   string
	Status int
	Reply  []byte
	Header http.Header
	Took   time.Duration
	// Tries is how many times the request was sent (Step.Within).
	Tries int
}

// DemoSteps are the demo's requests: create a user, place an order for her
// (the orders service asks the users service over the broker, then
// publishes OrderPlaced), read the order back, list her orders with a query
// parameter, read the notification the event brought about, and three errors — an unknown order
// (404), an order for an unknown user (404 that the users service
// decided), and a user that fails validation (400 with the field
// violations).
func DemoSteps() []Step {
	return []Step{{
		Title:  "Create a user (a public route; the JSON body is the User message)",
		Method: http.MethodPost, Path: "/v1/users",
		Body:   `{"email":"ada@example.com","display_name":"Ada Lovelace"}`,
		Status: http.StatusOK,
		Check: func(r map[string]any, vars map[string]string) error {
			id := str(r, "user", "userId")
			if !strings.HasPrefix(id, "u-") || str(r, "user", "email") != "ada@example.com" || str(r, "user", "displayName") != "Ada Lovelace" {
				return fmt.Errorf("want a user u-… for ada@example.com named Ada Lovelace")
			}
			vars["user_id"] = id
			return nil
		},
	}, {
		Title:  "Place an order for her (path parameter + body; orders asks users over the broker, then publishes OrderPlaced)",
		Method: http.MethodPost, Path: "/v1/users/{user_id}/orders",
		Body:   `{"items":[{"sku":"purista-mug","quantity":2,"unit_price_cents":1250},{"sku":"gopher-sticker","quantity":1,"unit_price_cents":300}]}`,
		Status: http.StatusOK,
		Check: func(r map[string]any, vars map[string]string) error {
			id := str(r, "order", "orderId")
			if !strings.HasPrefix(id, "o-") || str(r, "order", "userId") != vars["user_id"] ||
				str(r, "order", "totalCents") != "2800" || str(r, "order", "status") != "ORDER_STATUS_PLACED" {
				return fmt.Errorf("want a placed order o-… of %s totalling 2800 cents", vars["user_id"])
			}
			vars["order_id"] = id
			return nil
		},
	}, {
		Title:  "Read the order back",
		Method: http.MethodGet, Path: "/v1/orders/{order_id}",
		Status: http.StatusOK,
		Check: func(r map[string]any, vars map[string]string) error {
			if str(r, "order", "orderId") != vars["order_id"] || len(list(r["order"], "items")) != 2 {
				return fmt.Errorf("want order %s with its 2 items", vars["order_id"])
			}
			return nil
		},
	}, {
		Title:  "List her placed orders (a query parameter)",
		Method: http.MethodGet, Path: "/v1/users/{user_id}/orders?status=ORDER_STATUS_PLACED",
		Status: http.StatusOK,
		Check: func(r map[string]any, vars map[string]string) error {
			if os := list(r, "orders"); len(os) != 1 || str(os[0], "orderId") != vars["order_id"] {
				return fmt.Errorf("want exactly order %s", vars["order_id"])
			}
			return nil
		},
	}, {
		Title:  "Read her notifications (written by the notifications service when the OrderPlaced event reached it)",
		Method: http.MethodGet, Path: "/v1/users/{user_id}/notifications",
		Status: http.StatusOK,
		Within: 10 * time.Second,
		Check: func(r map[string]any, vars map[string]string) error {
			if ns := list(r, "notifications"); len(ns) != 1 || !strings.Contains(str(ns[0], "text"), vars["order_id"]) {
				return fmt.Errorf("want one notification about order %s", vars["order_id"])
			}
			return nil
		},
	}, {
		Title:  "An order that does not exist: 404",
		Method: http.MethodGet, Path: "/v1/orders/o-00000000",
		Status: http.StatusNotFound,
		Check: func(r map[string]any, _ map[string]string) error {
			if num(r, "code") != 5 || detail(r, "type.googleapis.com/google.rpc.ResourceInfo") == nil {
				return fmt.Errorf("want code 5 (NOT_FOUND) with a google.rpc.ResourceInfo detail")
			}
			return nil
		},
	}, {
		Title:  "An order for a user who does not exist: 404, decided by the users service",
		Method: http.MethodPost, Path: "/v1/users/u-00000000/orders",
		Body:   `{"items":[{"sku":"purista-mug","quantity":1,"unit_price_cents":1250}]}`,
		Status: http.StatusNotFound,
		Check: func(r map[string]any, _ map[string]string) error {
			d := detail(r, "type.googleapis.com/google.rpc.ResourceInfo")
			if num(r, "code") != 5 || d == nil || d["resourceName"] != "u-00000000" {
				return fmt.Errorf("want code 5 (NOT_FOUND) naming user u-00000000")
			}
			return nil
		},
	}, {
		Title:  "A user that is not valid: 400 with every field violation",
		Method: http.MethodPost, Path: "/v1/users",
		Body:   `{"email":"not-an-email","display_name":""}`,
		Status: http.StatusBadRequest,
		Check: func(r map[string]any, _ map[string]string) error {
			d := detail(r, "type.googleapis.com/google.rpc.BadRequest")
			if num(r, "code") != 3 || d == nil || len(list(d, "fieldViolations")) != 2 {
				return fmt.Errorf("want code 3 (INVALID_ARGUMENT) with a google.rpc.BadRequest detail of 2 field violations")
			}
			return nil
		},
	}}
}

// Demo sends demo steps to a gateway and prints each request and reply.
type Demo struct {
	// Base is the gateway's URL, e.g. http://127.0.0.1:8080.
	Base string
	// Out receives the transcript; nil prints nothing.
	Out io.Writer
	// Client sends the requests (default: a client with a 30 s timeout).
	Client *http.Client

	vars map[string]string
	n    int
}

// Run sends every step in turn and stops at the first that fails.
func (d *Demo) Run(ctx context.Context, steps []Step) ([]*Exchange, error) {
	var done []*Exchange
	for _, s := range steps {
		ex, err := d.Send(ctx, s)
		if err == nil {
			err = d.Check(ex)
		}
		for tries, until := 1, time.Now().Add(s.Within); err != nil && ex != nil && time.Now().Before(until); {
			select {
			case <-ctx.Done():
				return done, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			tries++
			if ex, err = d.Send(ctx, s); err == nil {
				ex.Tries = tries
				err = d.Check(ex)
			}
		}
		if ex != nil {
			done = append(done, ex)
			d.Print(ex)
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// Send fills the step's placeholders and sends it.
func (d *Demo) Send(ctx context.Context, s Step) (*Exchange, error) {
	if d.vars == nil {
		d.vars = map[string]string{}
	}
	path := s.Path
	for k, v := range d.vars {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	if strings.Contains(path, "{") {
		return nil, fmt.Errorf("step %q: path %s needs a value an earlier step did not save", s.Title, path)
	}
	ex := &Exchange{Step: s, URL: strings.TrimSuffix(d.Base, "/") + path, Body: s.Body}
	var body io.Reader
	if s.Body != "" {
		body = strings.NewReader(s.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, ex.URL, body)
	if err != nil {
		return nil, err
	}
	if s.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := d.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", s.Method, ex.URL, err)
	}
	defer resp.Body.Close()
	ex.Reply, err = io.ReadAll(resp.Body)
	ex.Took = time.Since(start)
	ex.Status, ex.Header = resp.StatusCode, resp.Header
	if err != nil {
		return ex, fmt.Errorf("%s %s: reading the reply: %w", s.Method, ex.URL, err)
	}
	return ex, nil
}

// Check verifies a reply against its step and saves the step's values.
func (d *Demo) Check(ex *Exchange) error {
	if d.vars == nil {
		d.vars = map[string]string{}
	}
	if ex.Status != ex.Step.Status {
		return fmt.Errorf("%s %s: HTTP %d, want %d: %s", ex.Step.Method, ex.URL, ex.Status, ex.Step.Status, ex.Reply)
	}
	var reply map[string]any
	if err := json.Unmarshal(ex.Reply, &reply); err != nil {
		return fmt.Errorf("%s %s: the reply is not a JSON object: %v: %s", ex.Step.Method, ex.URL, err, ex.Reply)
	}
	if ex.Step.Check != nil {
		if err := ex.Step.Check(reply, d.vars); err != nil {
			return fmt.Errorf("%s %s: %w; got %s", ex.Step.Method, ex.URL, err, ex.Reply)
		}
	}
	return nil
}

// Print writes the exchange as a curl command and the reply, indented.
func (d *Demo) Print(ex *Exchange) {
	if d.Out == nil {
		return
	}
	d.n++
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d. %s\n", d.n, ex.Step.Title)
	fmt.Fprintf(&b, "   $ curl -s")
	if ex.Step.Method != http.MethodGet {
		fmt.Fprintf(&b, " -X %s", ex.Step.Method)
	}
	fmt.Fprintf(&b, " '%s'", ex.URL)
	if ex.Body != "" {
		fmt.Fprintf(&b, " -d '%s'", ex.Body)
	}
	fmt.Fprintf(&b, "\n   HTTP %d %s, %v", ex.Status, http.StatusText(ex.Status), ex.Took.Round(100*time.Microsecond))
	if ex.Tries > 1 {
		fmt.Fprintf(&b, " (sent %d times: the event is delivered asynchronously)", ex.Tries)
	}
	b.WriteString("\n")
	var pretty bytes.Buffer
	if json.Indent(&pretty, ex.Reply, "   ", "  ") == nil {
		fmt.Fprintf(&b, "   %s\n", pretty.String())
	} else {
		fmt.Fprintf(&b, "   %s\n", ex.Reply)
	}
	_, _ = io.WriteString(d.Out, b.String())
}

// Value returns a value a step saved ("user_id", "order_id").
func (d *Demo) Value(name string) string { return d.vars[name] }

// str follows keys through nested JSON objects to a string.
func str(v any, keys ...string) string {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

func num(v map[string]any, key string) float64 {
	f, _ := v[key].(float64)
	return f
}

func list(v any, key string) []any {
	m, _ := v.(map[string]any)
	l, _ := m[key].([]any)
	return l
}

// detail returns the status detail of the given @type from an error body.
func detail(r map[string]any, typ string) map[string]any {
	for _, d := range list(r, "details") {
		if m, _ := d.(map[string]any); m["@type"] == typ {
			return m
		}
	}
	return nil
}
