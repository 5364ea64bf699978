package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	testingv1 "github.com/purista-go/purista/gen/purista/testing/v1"
	"github.com/purista-go/purista/transport/kafka"
)

// callDeadline is every call's deadline: the ledger must not pass by
// waiting longer than a user would.
const callDeadline = 5 * time.Second

// call is one request of the ledger, as its caller saw it.
type call struct {
	id       string
	path     string // "go" (the Kafka client) or "http" (through the gateway)
	scenario string
	sent     time.Time
	done     time.Time
	code     codes.Code
	err      string
	// keyed calls carry their id as idempotency key and are tried again
	// with it, as a careful caller does, after UNAVAILABLE or a deadline.
	keyed bool
	tries int
}

// keyedEvery makes every keyedEvery-th call of the load a keyed one.
const keyedEvery = 4

// keyedBudget is how long a keyed call's caller keeps trying, each try
// with its own deadline (callDeadline), before it gives up: a caller with
// an idempotency key can afford to wait out a broker's restart, and the
// suite's single-broker restart has taken up to 15 s on this machine.
const keyedBudget = 30 * time.Second

// window is a time in which a fault makes UNAVAILABLE and
// DEADLINE_EXCEEDED expected answers.
type window struct {
	scenario   string
	start, end time.Time
}

// ledger records every call the load makes.
type ledger struct {
	mu      sync.Mutex
	calls   []*call
	windows []window
	// gatewayKills are the times a gateway process was killed.
	gatewayKills []time.Time
	// brokerDown are the times no broker was there at all (one broker,
	// stopped and started again).
	brokerDown []window
	seq        atomic.Int64
}

func (l *ledger) add(c *call) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
}

func (l *ledger) outage(scenario string, start, end time.Time) {
	l.mu.Lock()
	l.windows = append(l.windows, window{scenario, start, end})
	l.mu.Unlock()
}

// load sends calls at a fixed rate on each path until stopped.
type load struct {
	l        *ledger
	client   testingv1.EchoServiceClient
	httpURL  func() string
	http     *http.Client
	scenario atomic.Value // string
	stop     chan struct{}
	wg       sync.WaitGroup
	inflight sync.WaitGroup
}

// maxCalls bounds how many calls one run of the suite sends.
const maxCalls = 60000

func newLoad(l *ledger, client testingv1.EchoServiceClient, httpURL func() string, perSecond int) *load {
	ld := &load{l: l, client: client, httpURL: httpURL, stop: make(chan struct{}),
		http: &http.Client{Timeout: callDeadline + time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	ld.scenario.Store("warm-up")
	for _, path := range []string{"go", "http"} {
		ld.wg.Add(1)
		go ld.run(path, time.Second/time.Duration(perSecond))
	}
	return ld
}

func (ld *load) setScenario(s string) { ld.scenario.Store(s) }

// pause stops sending until resume; calls in flight go on.
func (ld *load) run(path string, every time.Duration) {
	defer ld.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ld.stop:
			return
		case <-tick.C:
		}
		if paused.Load() {
			continue
		}
		n := ld.l.seq.Add(1)
		if n > maxCalls {
			return
		}
		c := &call{id: fmt.Sprintf("%s-%s-%d", ld.scenario.Load().(string), path, n), path: path, scenario: ld.scenario.Load().(string), keyed: n%keyedEvery == 0}
		ld.inflight.Add(1)
		go func() {
			defer ld.inflight.Done()
			c.sent = time.Now()
			for c.tries = 1; ; c.tries++ {
				if path == "go" {
					ld.callGo(c)
				} else {
					ld.callHTTP(c)
				}
				if !c.keyed || time.Since(c.sent)+callDeadline > keyedBudget || (c.code != codes.Unavailable && c.code != codes.DeadlineExceeded) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			c.done = time.Now()
			ld.l.add(c)
		}()
	}
}

var paused atomic.Bool

func (ld *load) callGo(c *call) {
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	var opts []grpc.CallOption
	if c.keyed {
		opts = append(opts, kafka.IdempotencyKey(c.id))
	}
	resp, err := ld.client.Echo(ctx, &testingv1.EchoRequest{Message: c.id}, opts...)
	switch {
	case err != nil:
		c.code, c.err = status.Code(err), err.Error()
	case resp.GetMessage() != c.id:
		c.code, c.err = codes.DataLoss, fmt.Sprintf("answer %q to call %q", resp.GetMessage(), c.id)
	default:
		c.code = codes.OK
	}
}

func (ld *load) callHTTP(c *call) {
	body, _ := json.Marshal(map[string]string{"message": c.id})
	req, _ := http.NewRequest(http.MethodPost, ld.httpURL()+"/v1/echo", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Grpc-Timeout", fmt.Sprintf("%dm", callDeadline.Milliseconds()))
	if c.keyed {
		req.Header.Set("Idempotency-Key", c.id)
	}
	resp, err := ld.http.Do(req)
	if err != nil {
		// The gateway is not there (killed, restarting): the caller
		// sees what a load balancer would answer, UNAVAILABLE.
		c.code, c.err = codes.Unavailable, err.Error()
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out struct {
		Message string `json:"message"`
		Code    *int   `json:"code"`
	}
	_ = json.Unmarshal(data, &out)
	switch {
	case resp.StatusCode == http.StatusOK && out.Message == c.id:
		c.code = codes.OK
	case resp.StatusCode == http.StatusOK:
		c.code, c.err = codes.DataLoss, fmt.Sprintf("answer %s to call %q", data, c.id)
	case out.Code != nil:
		c.code, c.err = codes.Code(*out.Code), fmt.Sprintf("HTTP %d %s", resp.StatusCode, data)
	default:
		c.code, c.err = codes.Unknown, fmt.Sprintf("HTTP %d %s", resp.StatusCode, data)
	}
}

// end stops the load and waits for every call in flight.
func (ld *load) end() {
	close(ld.stop)
	ld.wg.Wait()
	ld.inflight.Wait()
}

// execAt lists, per call id, the instances that ran it and when;
// execTimes the times alone.
var (
	execAt    = map[string][]string{}
	execTimes = map[string][]time.Time{}
)

// executions reads the ledger files of the service instances: how often
// each call id ran, and which instances ran it.
func executions(svcs []*proc) (map[string]int, map[string][]*proc, error) {
	count := map[string]int{}
	by := map[string][]*proc{}
	for _, p := range svcs {
		f, err := os.Open(p.ledger)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			id, at, _ := strings.Cut(sc.Text(), " ")
			count[id]++
			by[id] = append(by[id], p)
			if ms, err := strconv.ParseInt(at, 10, 64); err == nil {
				execAt[id] = append(execAt[id], fmt.Sprintf("%s@%s", p.name, time.UnixMilli(ms).Format("15:04:05.000")))
				execTimes[id] = append(execTimes[id], time.UnixMilli(ms))
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, nil, err
		}
	}
	return count, by, nil
}

// result is what one scenario showed.
type result struct {
	scenario       string
	calls, failed  int
	lost           int // executed, no OK answer, caller alive
	lostWithKilled int // executed by an instance killed before it could reply
	// lostToKilledLeader counts calls that waited while a partition leader
	// was down after a kill -9 (the "leader-kill" window): a reply written
	// to it waits out the controller's fencing, longer than a deadline.
	lostToKilledLeader int
	// lostToOutage counts calls run just before the only broker went
	// away and whose deadline passed before it was back: no reply could
	// be written anywhere.
	lostToOutage int
	callerGone   int // HTTP calls in flight through a killed gateway
	doubles      int // ids executed more than once
	unexplained  int
	// keyed counts the keyed calls; keyedDoubles those executed more than
	// once (an effect repeated despite its key), keyedUnanswered those
	// without an OK answer after every try.
	keyed, keyedDoubles, keyedUnanswered int
	// maxWait is the longest a caller waited, for an answer or for its
	// deadline: a partition paused by a fault shows as the wait of the
	// calls sent when it began (at least the deadline when they failed).
	maxWait  time.Duration
	examples []string
}

func (r *result) example(format string, args ...any) {
	if len(r.examples) < 5 {
		r.examples = append(r.examples, fmt.Sprintf(format, args...))
	}
}

// analyse classifies every call of the ledger by scenario.
func (l *ledger) analyse(count map[string]int, by map[string][]*proc) map[string]*result {
	l.mu.Lock()
	defer l.mu.Unlock()
	res := map[string]*result{}
	get := func(s string) *result {
		if res[s] == nil {
			res[s] = &result{scenario: s}
		}
		return res[s]
	}
	sort.Slice(l.calls, func(i, j int) bool { return l.calls[i].sent.Before(l.calls[j].sent) })
	for _, c := range l.calls {
		r := get(c.scenario)
		r.calls++
		n := count[c.id]
		if c.keyed {
			// A keyed caller's tries add up to more than one deadline:
			// its wait says nothing about a partition's pause.
			r.keyed++
			if n > 1 {
				r.keyedDoubles++
			}
			if c.code != codes.OK {
				r.keyedUnanswered++
				r.example("keyed %s (%s, sent %s) unanswered after %d tries, %v: %v: %s", c.id, c.path, c.sent.Format("15:04:05.000"), c.tries, c.done.Sub(c.sent).Round(time.Millisecond), c.code, c.err)
			}
		} else {
			r.maxWait = max(r.maxWait, c.done.Sub(c.sent))
		}
		if n > 1 {
			r.doubles++
			r.example("%s (sent %s, %v after %v) executed %d times: %v", c.id, c.sent.Format("15:04:05.000"), c.code, c.done.Sub(c.sent).Round(time.Millisecond), n, execAt[c.id])
		}
		if c.code == codes.OK {
			if n == 0 {
				r.unexplained++
				r.example("%s answered OK but never executed", c.id)
			}
			continue
		}
		r.failed++
		switch {
		case c.path == "http" && l.gatewayKilledDuring(c):
			r.callerGone++
		case n > 0 && killedDuring(by[c.id], c):
			r.lostWithKilled++
		case n > 0 && l.leaderDownDuring(c):
			r.lostToKilledLeader++
		case n > 0 && l.noBrokerUntilDeadline(c):
			r.lostToOutage++
		case n > 0:
			r.lost++
			r.example("%s (%s, sent %s) executed %v but answered %v after %v: %s", c.id, c.path, c.sent.Format("15:04:05.000"), execAt[c.id], c.code, c.done.Sub(c.sent).Round(time.Millisecond), c.err)
		}
		if !l.explained(c) {
			r.unexplained++
			r.example("%s (%s, sent %s) %v after %v outside an outage: %s", c.id, c.path, c.sent.Format("15:04:05.000"), c.code, c.done.Sub(c.sent).Round(time.Millisecond), c.err)
		}
	}
	return res
}

// noBrokerUntilDeadline reports whether call c ran just before the only
// broker went away and its deadline passed while no broker was there: its
// reply had nowhere to go.
func (l *ledger) noBrokerUntilDeadline(c *call) bool {
	for _, w := range l.brokerDown {
		if !c.sent.Add(callDeadline).Before(w.end) {
			continue
		}
		// Run within the second before the broker was stopped, or while
		// it was shutting down: its reply was due when none was there.
		late := len(execTimes[c.id]) > 0
		for _, at := range execTimes[c.id] {
			late = late && !at.Before(w.start.Add(-time.Second))
		}
		if late {
			return true
		}
	}
	return false
}

// leaderDownDuring reports whether call c waited, if only in part, while a
// killed partition leader was down.
func (l *ledger) leaderDownDuring(c *call) bool {
	for _, w := range l.windows {
		if w.scenario == leaderKill && !c.done.Before(w.start) && !c.sent.After(w.end) {
			return true
		}
	}
	return false
}

// leaderKill names the outage window of a killed partition leader.
const leaderKill = "leader-kill"

// gatewayKilledDuring reports whether a gateway process was killed while
// the HTTP call c waited: its caller, the gateway, is gone with it.
func (l *ledger) gatewayKilledDuring(c *call) bool {
	for _, k := range l.gatewayKills {
		if !k.Before(c.sent) && !k.After(c.done) {
			return true
		}
	}
	return false
}

// killedDuring reports whether every instance that ran the call was killed
// while the call waited.
func killedDuring(ps []*proc, c *call) bool {
	for _, p := range ps {
		if p.killed.IsZero() || p.killed.Before(c.sent) || p.killed.After(c.done) {
			return false
		}
	}
	return len(ps) > 0
}

// explained reports whether a failed call overlaps an outage window and
// failed as a caller should see an outage: UNAVAILABLE or
// DEADLINE_EXCEEDED.
func (l *ledger) explained(c *call) bool {
	if c.code != codes.Unavailable && c.code != codes.DeadlineExceeded {
		return false
	}
	for _, w := range l.windows {
		if !c.done.Before(w.start) && !c.sent.After(w.end) {
			return true
		}
	}
	return false
}

func (r *result) String() string {
	s := fmt.Sprintf("%-18s calls %5d  failed %4d  lost %d  lost-with-killed-instance %d  lost-to-killed-leader %d  lost-with-no-broker %d  caller-gone %d  double %d  unexplained %d  longest-wait %v  keyed %d (double %d, unanswered %d)",
		r.scenario, r.calls, r.failed, r.lost, r.lostWithKilled, r.lostToKilledLeader, r.lostToOutage, r.callerGone, r.doubles, r.unexplained, r.maxWait.Round(time.Millisecond), r.keyed, r.keyedDoubles, r.keyedUnanswered)
	if len(r.examples) > 0 {
		s += "\n    " + strings.Join(r.examples, "\n    ")
	}
	return s
}
