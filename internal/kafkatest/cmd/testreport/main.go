// Command testreport turns `go test -json` output into what `make test`
// prints: one line per package, the full output of every failing test or
// package, and a summary that says how many tests ran against the real
// Apache Kafka broker (and with which version) or why that suite was skipped.
//
//	go test -json ./... | go run ./internal/kafkatest/cmd/testreport
//
// It exits 1 when any test or build failed or the input had no results.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/purista-go/purista/internal/kafkatest"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	ImportPath  string
	Test        string
	Output      string
	Elapsed     float64
	FailedBuild string
}

type testState struct {
	output      []string
	real        bool // logged kafkatest.RealMarker
	skippedReal bool
}

type pkgState struct {
	output []string
}

type report struct {
	out        io.Writer
	tests      map[string]*testState // "pkg\x00Test"
	pkgs       map[string]*pkgState
	builds     map[string][]string // ImportPath -> build output
	parents    map[string]bool     // tests that have subtests
	results    map[string]string   // test key -> pass/fail/skip
	elapsed    map[string]float64
	order      []string
	failed     bool
	pkgCount   int
	brokerInfo []string
}

func main() {
	r := &report{
		out:     os.Stdout,
		tests:   map[string]*testState{},
		pkgs:    map[string]*pkgState{},
		builds:  map[string][]string{},
		parents: map[string]bool{},
		results: map[string]string{},
		elapsed: map[string]float64{},
	}
	start := time.Now()
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not JSON: go itself complaining (for example a bad flag).
			fmt.Fprintln(r.out, string(line))
			continue
		}
		r.handle(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	if !r.summary(time.Since(start)) {
		os.Exit(1)
	}
}

func key(pkg, test string) string { return pkg + "\x00" + test }

func (r *report) handle(e event) {
	switch e.Action {
	case "build-output":
		r.builds[e.ImportPath] = append(r.builds[e.ImportPath], e.Output)
		return
	case "build-fail":
		r.failed = true
		fmt.Fprintf(r.out, "FAIL\t%s [build failed]\n", e.ImportPath)
		for _, l := range r.builds[e.ImportPath] {
			fmt.Fprint(r.out, "    ", l)
		}
		return
	}
	if e.Test == "" {
		r.handlePackage(e)
		return
	}
	k := key(e.Package, e.Test)
	ts := r.tests[k]
	if ts == nil {
		ts = &testState{}
		r.tests[k] = ts
		r.order = append(r.order, k)
		if i := strings.LastIndex(e.Test, "/"); i >= 0 {
			r.parents[key(e.Package, e.Test[:i])] = true
		}
	}
	switch e.Action {
	case "output":
		if strings.HasPrefix(e.Output, "=== ") {
			return
		}
		ts.output = append(ts.output, e.Output)
		if strings.Contains(e.Output, kafkatest.RealMarker) {
			ts.real = true
		}
		if strings.Contains(e.Output, kafkatest.SkipMessage) {
			ts.skippedReal = true
		}
		if _, info, ok := strings.Cut(e.Output, kafkatest.BrokerInfoMarker); ok {
			r.brokerInfo = append(r.brokerInfo, "real Kafka broker:"+strings.TrimRight(info, "\n"))
		}
	case "pass", "fail", "skip":
		r.results[k] = e.Action
		r.elapsed[k] = e.Elapsed
		if e.Action == "fail" && !r.parents[k] {
			r.failed = true
			fmt.Fprintf(r.out, "--- FAIL: %s (%s, %.2fs)\n", e.Test, e.Package, e.Elapsed)
			for _, l := range ts.output {
				if strings.HasPrefix(strings.TrimSpace(l), "--- ") {
					continue
				}
				fmt.Fprint(r.out, l)
			}
		}
	}
}

func (r *report) handlePackage(e event) {
	ps := r.pkgs[e.Package]
	if ps == nil {
		ps = &pkgState{}
		r.pkgs[e.Package] = ps
	}
	switch e.Action {
	case "output":
		ps.output = append(ps.output, e.Output)
	case "pass":
		r.pkgCount++
		fmt.Fprintf(r.out, "ok  \t%s\t%.2fs\n", e.Package, e.Elapsed)
	case "fail":
		r.pkgCount++
		r.failed = true
		if e.FailedBuild != "" {
			return // build-fail already printed the compiler output
		}
		fmt.Fprintf(r.out, "FAIL\t%s\t%.2fs\n", e.Package, e.Elapsed)
		// A panic or timeout ends the test binary: tests still running
		// never report a result, and their output holds the reason.
		for _, k := range r.order {
			pkg, name, _ := strings.Cut(k, "\x00")
			if pkg != e.Package || r.results[k] != "" {
				continue
			}
			r.results[k] = "fail"
			fmt.Fprintf(r.out, "--- FAIL: %s (%s, did not finish)\n", name, pkg)
			for _, l := range r.tests[k].output {
				fmt.Fprint(r.out, "    ", l)
			}
		}
		// TestMain failures and similar land in package output.
		for _, l := range ps.output {
			t := strings.TrimSpace(l)
			if t == "FAIL" || t == "PASS" || strings.HasPrefix(t, "FAIL\t"+e.Package) || strings.HasPrefix(t, "ok  \t") {
				continue
			}
			fmt.Fprint(r.out, "    ", l)
		}
	}
}

// skipReason returns the message a skipped test gave: its last output line
// without the "file_test.go:12: " prefix.
func skipReason(output []string) string {
	for i := len(output) - 1; i >= 0; i-- {
		l := strings.TrimSpace(output[i])
		if l == "" || strings.HasPrefix(l, "--- ") {
			continue
		}
		if _, msg, ok := strings.Cut(l, ": "); ok && strings.Contains(l[:len(l)-len(msg)], ".go:") {
			l = msg
		}
		if len(l) > 160 {
			l = l[:160] + "..."
		}
		return l
	}
	return "(no reason given)"
}

// usedReal reports whether the test or one of its parents logged
// kafkatest.RealMarker (kafkatest.Brokers logs it on the "kafka" subtest,
// whose own subtests do the work).
func (r *report) usedReal(k string) bool {
	pkg, name, _ := strings.Cut(k, "\x00")
	for {
		if ts := r.tests[key(pkg, name)]; ts != nil && ts.real {
			return true
		}
		i := strings.LastIndex(name, "/")
		if i < 0 {
			return false
		}
		name = name[:i]
	}
}

// summary prints the totals and reports whether everything passed.
func (r *report) summary(d time.Duration) bool {
	var pass, fail, skip int
	var realPass, realFail, realSkip, realSkipped int
	var realTests []string
	skipReasons := map[string]int{}
	for _, k := range r.order {
		if r.parents[k] {
			continue // count leaves only: a parent's result is its children's
		}
		ts := r.tests[k]
		res := r.results[k]
		switch res {
		case "pass":
			pass++
		case "fail":
			fail++
		case "skip":
			skip++
		}
		name := strings.SplitN(k, "\x00", 2)[1]
		if r.usedReal(k) {
			switch res {
			case "pass":
				realPass++
			case "fail":
				realFail++
			case "skip":
				realSkip++
			}
			realTests = append(realTests, fmt.Sprintf("%s %s (%.2fs)", strings.ToUpper(res), name, r.elapsed[k]))
		} else if ts.skippedReal && res == "skip" {
			realSkipped++
		} else if res == "skip" {
			skipReasons[skipReason(ts.output)]++
		}
	}
	fmt.Fprintln(r.out)
	if len(r.brokerInfo) > 0 || len(realTests) > 0 {
		for _, l := range r.brokerInfo {
			fmt.Fprintln(r.out, l)
		}
		sort.Strings(realTests)
		const maxList = 30
		for i, l := range realTests {
			if i == maxList {
				fmt.Fprintf(r.out, "  ... and %d more\n", len(realTests)-maxList)
				break
			}
			fmt.Fprintln(r.out, "  "+l)
		}
	}
	if len(skipReasons) > 0 {
		reasons := make([]string, 0, len(skipReasons))
		for reason := range skipReasons {
			reasons = append(reasons, reason)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if skipReasons[reasons[i]] != skipReasons[reasons[j]] {
				return skipReasons[reasons[i]] > skipReasons[reasons[j]]
			}
			return reasons[i] < reasons[j]
		})
		for i, reason := range reasons {
			if i == 5 {
				fmt.Fprintf(r.out, "skipped: ... and %d other reasons\n", len(reasons)-5)
				break
			}
			fmt.Fprintf(r.out, "skipped %d: %s\n", skipReasons[reason], reason)
		}
	}
	status := "PASS"
	if r.failed || fail > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(r.out, "%s: %d tests passed, %d failed, %d skipped in %d packages (%.1fs)\n",
		status, pass, fail, skip, r.pkgCount, d.Seconds())
	brokers := os.Getenv(kafkatest.EnvBrokers)
	switch {
	case realPass+realFail+realSkip > 0:
		fmt.Fprintf(r.out, "real Kafka: %d tests ran against Apache Kafka %s at %s: %d passed, %d failed, %d skipped\n",
			realPass+realFail+realSkip, kafkatest.Version(), brokers, realPass, realFail, realSkip)
	case realSkipped > 0:
		fmt.Fprintf(r.out, "real Kafka: %d tests skipped (%s)\n", realSkipped, kafkatest.SkipMessage)
	default:
		fmt.Fprintln(r.out, "real Kafka: no test asked for the real broker")
	}
	// The plain closing line CI systems look for.
	fmt.Fprintf(r.out, "tests: %d passed, %d failed, %d skipped\n", pass, fail, skip)
	if pass+fail+skip == 0 && !r.failed {
		fmt.Fprintln(r.out, "testreport: no test results on stdin")
		return false
	}
	return status == "PASS"
}
