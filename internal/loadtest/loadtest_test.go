package loadtest

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 1000)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Microsecond
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}, {0.0001, time.Microsecond}} {
		if got := Percentile(lat, tc.q); got != tc.want {
			t.Errorf("Percentile(1..1000 µs, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

func TestSequentialSortsAndStopsAtBudget(t *testing.T) {
	var calls atomic.Int64
	lat, err := Sequential(1000, 20*time.Millisecond, func() error {
		time.Sleep(time.Duration(5-calls.Add(1)%5) * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(lat); n == 0 || n >= 1000 || int64(n) != calls.Load() {
		t.Fatalf("%d latencies for %d calls: want every call recorded and the budget to stop it well before 1000", n, calls.Load())
	}
	for i := 1; i < len(lat); i++ {
		if lat[i] < lat[i-1] {
			t.Fatalf("latencies not sorted: %v", lat)
		}
	}
}

func TestRateCountsAndStopsOnError(t *testing.T) {
	var calls atomic.Int64
	rate, err := Rate(500, 8, time.Minute, func() error { calls.Add(1); return nil })
	if err != nil || calls.Load() != 500 || rate <= 0 {
		t.Fatalf("Rate = %v, %v after %d calls: want 500 calls, a positive rate, no error", rate, err, calls.Load())
	}
	boom := errors.New("boom")
	calls.Store(0)
	if _, err := Rate(500, 8, time.Minute, func() error {
		if calls.Add(1) == 10 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) || calls.Load() >= 500 {
		t.Fatalf("Rate error %v after %d calls: want boom and the calls to stop", err, calls.Load())
	}
}
