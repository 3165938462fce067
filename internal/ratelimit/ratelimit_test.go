package ratelimit_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
)

// waitN calls Wait n times from workers goroutines and returns how long
// (in the bubble's fake time) it took.
func waitN(t *testing.T, l *ratelimit.Limiter, n, workers int) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	for range workers {
		wg.Go(func() {
			for range jobs {
				if err := l.Wait(context.Background()); err != nil {
					t.Errorf("Wait: %v", err)
					return
				}
				l.Accepted()
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func TestLimiter_PacesThePoolAtTheRate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 50})
		// 101 requests at 50/s with burst 1: the first at once, then 2s.
		if got := waitN(t, l, 101, 8); got != 2*time.Second {
			t.Errorf("101 Waits at 50/s took %v, want 2s", got)
		}
	})
}

func TestLimiter_NoRateMeansNoWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{})
		if got := waitN(t, l, 1000, 4); got != 0 {
			t.Errorf("1000 Waits without a rate took %v, want 0", got)
		}
		if r := l.Stats().Rate; !math.IsInf(r, 1) {
			t.Errorf("Stats().Rate = %v, want +Inf", r)
		}
	})
}

func TestLimiter_ThrottledPausesEveryWorkerUntilRetryAfter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 1000})
		start := time.Now()
		l.Throttled(3 * time.Second)
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if err := l.Wait(context.Background()); err != nil {
					t.Errorf("Wait: %v", err)
				}
				if d := time.Since(start); d < 3*time.Second {
					t.Errorf("a worker left %v after a 429 with Retry-After 3s, want >= 3s", d)
				}
			})
		}
		wg.Wait()
		if st := l.Stats(); st.Throttles != 1 || st.Paused != 3*time.Second {
			t.Errorf("Stats() = %+v, want 1 throttle, 3s paused", st)
		}
	})
}

func TestLimiter_PauseHoldsThePoolWithoutSlowingIt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 100})
		start := time.Now()
		l.Pause(2 * time.Second)
		if err := l.Wait(context.Background()); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("Wait after Pause(2s) returned after %v, want 2s", d)
		}
		// Then the full rate again: 100 more at 100/s take 1s.
		if got := waitN(t, l, 100, 8); got != time.Second {
			t.Errorf("100 Waits at 100/s after the pause took %v, want 1s", got)
		}
		if st := l.Stats(); st.Rate != 100 || st.Throttles != 0 || st.Paused != 2*time.Second {
			t.Errorf("Stats() = %+v, want rate 100, no throttle, 2s paused", st)
		}
	})
}

func TestLimiter_BackoffWithoutRetryAfterDoubles(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 1000, Backoff: 100 * time.Millisecond})
		for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
			start := time.Now()
			l.Throttled(0)
			if err := l.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got < want || got > want+10*time.Millisecond {
				t.Errorf("pause %d without Retry-After = %v, want %v", i, got, want)
			}
		}
		// An accepted request resets the backoff.
		l.Accepted()
		start := time.Now()
		l.Throttled(0)
		l.Wait(context.Background())
		if got := time.Since(start); got > 110*time.Millisecond {
			t.Errorf("pause after an accepted request = %v, want the base 100ms again", got)
		}
	})
}

func TestLimiter_HalvesOnAQuickThrottleAndHoldsAMeasuredLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		waitN(t, l, 10, 4) // 25ms of traffic: too short to measure
		l.Throttled(time.Second)
		if got := l.Stats().Rate; got != 200 {
			t.Errorf("rate after a 429 with nothing measured = %v, want 200 (halved)", got)
		}
		time.Sleep(time.Second)
		// Two seconds at the new rate of 200, all accepted, then a 429: the
		// server's limit is what it accepted.
		waitN(t, l, 400, 8)
		l.Throttled(time.Second)
		got := l.Stats().Rate
		if got < 190 || got > 200 {
			t.Errorf("rate after a 429 following 2s accepted at 200/s = %v, want about 0.98*200", got)
		}
		// Quiet time does not take the rate over the measured limit.
		time.Sleep(10 * time.Second)
		waitN(t, l, 100, 4)
		if r := l.Stats().Rate; r > 200*0.98+0.01 {
			t.Errorf("rate 10s after = %v, want held at or under %v", r, 200*0.98)
		}
	})
}

func TestLimiter_ClimbsBackTowardTheCeiling(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 100})
		l.Throttled(time.Second) // halved to 50, nothing measured
		time.Sleep(31 * time.Second)
		waitN(t, l, 1, 1)
		r1 := l.Stats().Rate
		if r1 <= 50 {
			t.Errorf("rate 31s after a halving = %v, want climbing above 50", r1)
		}
		time.Sleep(10 * time.Minute)
		waitN(t, l, 1, 1)
		if r := l.Stats().Rate; r != 100 {
			t.Errorf("rate after a long quiet time = %v, want back at the ceiling 100", r)
		}
	})
}

func TestLimiter_ManyThrottlesAtOnceDecreaseOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		// Requests sent before the first 429 took effect come back 429 too.
		for range 20 {
			l.Throttled(time.Second)
		}
		if got := l.Stats().Rate; got != 200 {
			t.Errorf("rate after 20 429s of one episode = %v, want 200 (one decrease)", got)
		}
	})
}

func TestLimiter_WaitEndsWithTheContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 10})
		l.Throttled(time.Hour)
		cause := errors.New("operator stop")
		ctx, cancel := context.WithCancelCause(context.Background())
		go func() {
			time.Sleep(time.Second)
			cancel(cause)
		}()
		if err := l.Wait(ctx); !errors.Is(err, cause) {
			t.Errorf("Wait during a pause, context cancelled = %v, want the cause", err)
		}
	})
}
