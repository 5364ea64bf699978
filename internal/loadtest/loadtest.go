// Package loadtest measures request/reply round trips for the benchmarks:
// the latency of each call made one at a time, and calls per second with
// many in flight. Every measurement is bounded in calls and in time, and
// percentiles come from the recorded latencies, not from a mean.
package loadtest

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Sequential makes up to n calls of f one after another, stopping early
// once budget has passed (after at least one call), and returns the
// latency of each call made, sorted, or the first error.
func Sequential(n int, budget time.Duration, f func() error) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	end := time.Now().Add(budget)
	for len(lat) < n && (len(lat) == 0 || time.Now().Before(end)) {
		start := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return lat, nil
}

// Percentile returns the q quantile (0 < q <= 1) of sorted latencies by
// nearest rank: the 99th percentile of 1000 calls is the 990th fastest.
// It returns 0 for no latencies.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Rate makes up to n calls of f with inflight of them in flight at once
// and returns the calls finished per second. No call starts after budget
// has passed; the first error stops the calls not yet started and is
// returned.
func Rate(n, inflight int, budget time.Duration, f func() error) (float64, error) {
	var (
		wg      sync.WaitGroup
		next    atomic.Int64
		done    atomic.Int64
		stopped atomic.Bool
		once    sync.Once
		first   error
	)
	start := time.Now()
	end := start.Add(budget)
	for range min(inflight, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && !stopped.Load() && time.Now().Before(end) {
				if err := f(); err != nil {
					once.Do(func() { first = err })
					stopped.Store(true)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds(), first
}

// Median returns the median of v (the upper one of an even count), or 0
// for none.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// CPUTime returns the CPU time (user and system) the process has used.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
