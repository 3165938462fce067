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

// TestLimiter_KeepsTheScheduleThroughALateWakeUp: a waiter that wakes
// 200ms after its slot (a starved process, as the jump of the clock plays
// it) makes up the slots it missed while the server has shown no limit,
// instead of starting the schedule again from when it woke.
func TestLimiter_KeepsTheScheduleThroughALateWakeUp(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		now := func() time.Time {
			if d := time.Since(start); d >= time.Second {
				return time.Now().Add(200 * time.Millisecond)
			}
			return time.Now()
		}
		l := ratelimit.New(ratelimit.Config{Rate: 200, Now: now})
		// 2,000 at 200/s: the last leaves 9.995s after the first by the
		// limiter's clock, 9.795s by the timers.
		if got, want := waitN(t, l, 2000, 8), 9795*time.Millisecond; got != want {
			t.Errorf("2000 Waits at 200/s through a 200ms late wake-up took %v, want %v", got, want)
		}
	})
}

func TestLimiter_BurstLeavesAtOnceAfterIdleTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 10, Burst: 5})
		if got := waitN(t, l, 5, 5); got != 0 {
			t.Errorf("5 Waits at 10/s burst 5 took %v, want 0", got)
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

func TestLimiter_PausesThePoolWhenTheServerRefusesEverything(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 1000})
		for range 7 {
			l.Throttled(3 * time.Second)
		}
		if st := l.Stats(); st.Paused != 0 {
			t.Errorf("after 7 429s: Stats() = %+v, want no pause yet", st)
		}
		start := time.Now()
		l.Throttled(3 * time.Second) // the eighth in a row, nothing accepted
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if err := l.Wait(context.Background()); err != nil {
					t.Errorf("Wait: %v", err)
				}
				if d := time.Since(start); d < 3*time.Second {
					t.Errorf("a worker left %v after the server refused all, with Retry-After 3s, want >= 3s", d)
				}
			})
		}
		wg.Wait()
		if st := l.Stats(); st.Throttles != 8 || st.Paused != 3*time.Second {
			t.Errorf("Stats() = %+v, want 8 throttles, 3s paused", st)
		}
	})
}

func TestLimiter_A429AmongAcceptedRequestsDoesNotPause(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 100})
		waitN(t, l, 50, 4)
		l.Throttled(time.Second)
		start := time.Now()
		waitN(t, l, 1, 1)
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Errorf("Wait after one 429 among accepted requests took %v, want no pause (the next interval)", d)
		}
		if st := l.Stats(); st.Paused != 0 {
			t.Errorf("Stats() = %+v, want nothing paused", st)
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
		for range 7 {
			l.Throttled(0)
		}
		for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
			time.Sleep(100 * time.Millisecond) // nothing accepted for that long: refused everything
			start := time.Now()
			l.Throttled(0)
			l.Throttled(0) // an answer to a request sent before the pause: no longer pause
			if err := l.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got < want || got > want+10*time.Millisecond {
				t.Errorf("pause %d without Retry-After = %v, want %v", i, got, want)
			}
		}
		// An accepted request resets the backoff.
		l.Accepted()
		for range 7 {
			l.Throttled(0)
		}
		time.Sleep(time.Second)
		start := time.Now()
		l.Throttled(0)
		l.Wait(context.Background())
		if got := time.Since(start); got > 110*time.Millisecond {
			t.Errorf("pause after an accepted request = %v, want the base 100ms again", got)
		}
	})
}

func TestLimiter_ManyThrottlesOfOneEpisodeDecreaseOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 400, Burst: 20})
		for range 20 {
			l.Wait(context.Background())
		}
		// Requests sent before the first 429 took effect come back 429 too.
		for range 20 {
			l.Throttled(time.Second)
		}
		time.Sleep(10 * time.Millisecond) // 429s are judged when their clump is over
		if got, want := l.Stats().Rate, 400*0.97/2; got != want {
			t.Errorf("rate after 20 429s of one episode = %v, want %v (one cut to half, under the margin)", got, want)
		}
	})
}

// TestLimiter_A429ClumpedWithAnAcceptedAnswerIsACollision: a 429 that
// comes in one clump with an accepted answer, before or after it, leaves
// the rate alone; one that comes alone cuts it.
func TestLimiter_A429ClumpedWithAnAcceptedAnswerIsACollision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		answers func(l *ratelimit.Limiter)
		cut     bool
	}{
		{"AcceptedFirst", func(l *ratelimit.Limiter) { l.Accepted(); l.Throttled(time.Second) }, false},
		{"ThrottledFirst", func(l *ratelimit.Limiter) { l.Throttled(time.Second); l.Accepted() }, false},
		{"Alone", func(l *ratelimit.Limiter) {
			l.Throttled(time.Second)
			time.Sleep(5 * time.Millisecond)
			l.Accepted()
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := ratelimit.New(ratelimit.Config{Rate: 100})
				waitN(t, l, 50, 4)
				time.Sleep(5 * time.Millisecond)
				tt.answers(l)
				time.Sleep(5 * time.Millisecond)
				if got := l.Stats().Rate; (got < 100) != tt.cut {
					t.Errorf("Stats().Rate after %s = %v, want a cut: %v", tt.name, got, tt.cut)
				}
			})
		})
	}
}

func TestLimiter_WaitEndsWithTheContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 10})
		for range 8 {
			l.Throttled(time.Hour)
		}
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

func TestStateRateAt(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		s    ratelimit.State
		d    time.Duration
		want float64
	}{
		{"NeverThrottled", ratelimit.State{Rate: 400}, time.Hour, 400},
		// 100 * (1 + 0.00003*100*3)
		{"CreepsAfterACut", ratelimit.State{Rate: 100, Limit: 100, Since: t0}, 3 * time.Second, 100.9},
		// 100 * (1 + 0.00003*100*9) + 100 * 1^3
		{"ProbesOnACubic", ratelimit.State{Rate: 100, Limit: 100, Since: t0}, 9 * time.Second, 202.7},
		{"CappedAtTheCeiling", ratelimit.State{Rate: 97, Limit: 100, Since: t0}, time.Hour, 400},
		{"HoldsAfterAnEarlyCut", ratelimit.State{Rate: 50, Since: t0}, 250 * time.Millisecond, 50},
		{"DoublesEachSecondWhileTheLimitIsUnknown", ratelimit.State{Rate: 50, Since: t0}, 2250 * time.Millisecond, 200},
	}
	for _, tt := range tests {
		if got := tt.s.RateAt(t0.Add(tt.d), 400); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: %+v.RateAt(+%v, 400) = %v, want %v", tt.name, tt.s, tt.d, got, tt.want)
		}
	}
}

// TestLimiter_WaitRefusesADoneContext: a stopped run sends nothing more,
// however free the limiter is.
func TestLimiter_WaitRefusesADoneContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, cfg := range []ratelimit.Config{{}, {Rate: 1e6, Burst: 100}} {
		l := ratelimit.New(cfg)
		for i := range 200 {
			if err := l.Wait(ctx); err == nil {
				t.Fatalf("Wait(done ctx) number %d with %+v = nil, want an error", i+1, cfg)
			}
		}
	}
}

// TestLimiter_ARequestLeavesNotBeforeItsSlot: Reserve may come back
// before the slot, for the request to be built meanwhile, but its leave
// returns at the slot, never before.
func TestLimiter_ARequestLeavesNotBeforeItsSlot(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(ratelimit.Config{Rate: 100})
	start := time.Now() // the first slot is now or later
	var left []time.Time
	for range 5 {
		leave, err := l.Reserve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		left = append(left, time.Now())
	}
	for i, at := range left {
		if gap, slot := at.Sub(start), time.Duration(i)*10*time.Millisecond; gap < slot {
			t.Errorf("departure %d left %v after the start, want at least %v at 100/s", i, gap, slot)
		}
	}
}

// TestLimiter_ALateDepartureIsNotMadeUpOnceThrottled: once the server has
// throttled, the next slot is an interval after the moment the request
// really left, however late after its slot that was: a departure that
// left early to catch up would follow the late one closer than the
// interval, which a bucket of burst 1 refuses.
func TestLimiter_ALateDepartureIsNotMadeUpOnceThrottled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 100})
		l.Adopt(ratelimit.State{Rate: 100, Limit: 100, Margin: 1, Since: time.Now()})
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		leave, err := l.Reserve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond) // the request is built slowly
		if err := leave(t.Context()); err != nil {
			t.Fatal(err)
		}
		late := time.Now()
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if gap := time.Since(late); gap < 10*time.Millisecond {
			t.Errorf("the departure after a late one left %v after it, want the whole interval, 10ms", gap)
		}
	})
}

// TestLimiter_AnAnswerIsJudgedWhenItCameNotWhenItsSlotIs: a departure
// reserved before its slot counts as evidence when it was reserved, not
// at the slot: a 429 and an accepted answer that come together (a
// collision, no evidence) stay one clump although the slot reserved
// between them lies past the clump.
func TestLimiter_AnAnswerIsJudgedWhenItCameNotWhenItsSlotIs(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		l.Adopt(ratelimit.State{Rate: 100, Limit: 100, Margin: 1, Since: time.Now()})
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		ratelimit.LeadUnderSynctest(l)
		before := l.State()
		time.Sleep(7 * time.Millisecond)
		l.Throttled(0)
		if _, err := l.Reserve(t.Context()); err != nil { // 8.5ms: the slot at 10ms, 1.5ms ahead
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
		l.Accepted() // 1.6ms after the 429: one clump
		time.Sleep(50 * time.Millisecond)
		l.Stats() // the clump is over and judged
		if after := l.State(); after.Rate != before.Rate {
			t.Errorf("State().Rate after a 429 clumped with an accepted answer = %v, want %v (a collision)", after.Rate, before.Rate)
		}
	})
}

// TestLimiter_AReservedRequestIsNotHeldByALaterPause: the end of a
// reserved wait is the request's own, run on a context that a stopping run
// does not end (a request out is never cancelled): a pause that began
// since the reservation does not hold it there, where nothing could stop
// it; the pause holds the reservations after it.
func TestLimiter_AReservedRequestIsNotHeldByALaterPause(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 100})
		leave, err := l.Reserve(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		l.Pause(30 * time.Second)
		start := time.Now()
		if err := leave(context.WithoutCancel(t.Context())); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("leave after a later Pause(30s) waited %v, want 0", waited)
		}
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < 30*time.Second {
			t.Errorf("the next request left %v after the pause began, want 30s", waited)
		}
	})
}
