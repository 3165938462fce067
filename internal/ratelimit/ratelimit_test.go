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
	"golang.org/x/time/rate"
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

// A server decides, at the moment a request reaches it, whether it takes
// it, and the Retry-After of a refusal.
type server interface {
	allow(now time.Time) (ok bool, retryAfter time.Duration)
}

// bucket is a token bucket whose rate may change on a schedule.
type bucket struct {
	mu         sync.Mutex
	lim        *rate.Limiter
	retryAfter bool
	schedule   []step // sorted by at
	start      time.Time
}

type step struct {
	at   time.Duration // since start
	rate float64
}

func newBucket(perSecond float64, burst int, retryAfter bool, schedule ...step) *bucket {
	return &bucket{lim: rate.NewLimiter(rate.Limit(perSecond), burst), retryAfter: retryAfter, schedule: schedule, start: time.Now()}
}

func (b *bucket) allow(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.schedule) > 0 && now.Sub(b.start) >= b.schedule[0].at {
		b.lim.SetLimitAt(now, rate.Limit(b.schedule[0].rate))
		b.schedule = b.schedule[1:]
	}
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	if b.retryAfter {
		return false, time.Second
	}
	return false, 0
}

// fixedWindow takes perWindow requests in each second since start.
type fixedWindow struct {
	mu        sync.Mutex
	perWindow int
	start     time.Time
	window    int64
	used      int
}

func (f *fixedWindow) allow(now time.Time) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w := int64(now.Sub(f.start) / time.Second); w != f.window {
		f.window, f.used = w, 0
	}
	if f.used < f.perWindow {
		f.used++
		return true, 0
	}
	return false, 0
}

// run is what a pool did against a server in the bubble.
type run struct {
	start               time.Time
	accepted, throttled []time.Time // when the server decided
}

// between counts the accepted requests the server decided in [from, to)
// after the run's start.
func (r *run) between(start time.Time, from, to time.Duration) (acc, thr int) {
	for _, at := range r.accepted {
		if d := at.Sub(start); d >= from && d < to {
			acc++
		}
	}
	for _, at := range r.throttled {
		if d := at.Sub(start); d >= from && d < to {
			thr++
		}
	}
	return acc, thr
}

// drive runs workers doing what the importer's send does for d: Wait, a
// request that reaches the server after half of latency and answers after
// the other half, then Accepted or Throttled.
func drive(t *testing.T, l *ratelimit.Limiter, srv server, workers int, latency, d time.Duration) *run {
	t.Helper()
	var (
		mu sync.Mutex
		r  run
		wg sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r.start = time.Now()
	for range workers {
		wg.Go(func() {
			for {
				if err := l.Wait(ctx); err != nil {
					return
				}
				time.Sleep(latency / 2)
				now := time.Now()
				ok, retryAfter := srv.allow(now)
				mu.Lock()
				if ok {
					r.accepted = append(r.accepted, now)
				} else {
					r.throttled = append(r.throttled, now)
				}
				mu.Unlock()
				time.Sleep(latency / 2)
				if ok {
					l.Accepted()
				} else {
					l.Throttled(retryAfter)
				}
			}
		})
	}
	wg.Wait()
	return &r
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

// TestLimiter_FindsAndHoldsTheLimit runs a pool against simulated servers
// of each shape and checks the law, without network or CPU noise: the
// benchmarks measure it with both.
func TestLimiter_FindsAndHoldsTheLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		ceiling      float64
		server       func() server
		limit        float64
		minShare     float64 // of the limit, accepted over the run
		maxThrottled float64 // share of requests
	}{
		// Each probe above a burst-1 bucket's limit costs about three
		// 429s at this round trip (it refuses every other request until
		// the cut takes effect), and the first round trip at the
		// ceiling a dozen.
		{"Bucket100Burst1", 400, func() server { return newBucket(100, 1, true) }, 100, 0.95, 0.015},
		{"Bucket50Burst1Ceiling20x", 1000, func() server { return newBucket(50, 1, true) }, 50, 0.93, 0.04},
		{"Bucket100Burst10NoRetryAfter", 400, func() server { return newBucket(100, 10, false) }, 100, 0.95, 0.02},
		// Above issue 18's 2% target: learning the window in the first
		// seconds costs that much of a 30s run (BENCHMARKS.md, figure 10).
		{"FixedWindow100NoRetryAfter", 400, func() server { return &fixedWindow{perWindow: 100, start: time.Now()} }, 100, 0.93, 0.03},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const d = 30 * time.Second
				l := ratelimit.New(ratelimit.Config{Rate: tt.ceiling})
				r := drive(t, l, tt.server(), 16, 30*time.Millisecond, d)
				acc, thr := len(r.accepted), len(r.throttled)
				share := float64(acc) / d.Seconds() / tt.limit
				thrShare := float64(thr) / float64(acc+thr)
				t.Logf("accepted %.3f of the limit, throttled %.2f%% (%d), state %+v", share, 100*thrShare, thr, l.State())
				if share < tt.minShare {
					t.Errorf("accepted %.3f of the limit over %v, want >= %v", share, d, tt.minShare)
				}
				if thrShare > tt.maxThrottled {
					t.Errorf("throttled %.3f of requests, want <= %v", thrShare, tt.maxThrottled)
				}
			})
		})
	}
}

func TestLimiter_FollowsALimitThatDropsAndRises(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		srv := newBucket(100, 1, true, step{10 * time.Second, 50}, step{20 * time.Second, 100})
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		r := drive(t, l, srv, 16, 30*time.Millisecond, 50*time.Second)
		// Within 5s of the drop, 429s stop: the rate is at or under 50.
		if _, thr := r.between(start, 15*time.Second, 20*time.Second); thr > 2 {
			t.Errorf("429s 5-10s after the limit dropped to 50/s = %d, want at most 2", thr)
		}
		// Within 30s of the rise, the pool runs at the new limit again.
		if acc, _ := r.between(start, 45*time.Second, 50*time.Second); acc < 5*90 {
			t.Errorf("accepted 25-30s after the limit rose to 100/s = %d in 5s, want >= 450", acc)
		}
		if lim := l.State().Limit; lim < 90 || lim > 110 {
			t.Errorf("State().Limit at the end = %v, want about 100", lim)
		}
	})
}

// TestLimiter_ClientSlownessIsNotTheLimit: a pool that cannot reach the
// limit (too few workers for the latency, as under CPU starvation) and
// meets a stray 429 does not lower the limit it measured.
func TestLimiter_ClientSlownessIsNotTheLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		drive(t, l, newBucket(100, 1, true), 16, 30*time.Millisecond, 10*time.Second)
		before := l.State().Limit
		if before < 95 || before > 105 {
			t.Fatalf("State().Limit after 10s at a 100/s bucket = %v, want about 100", before)
		}
		// 2 workers at 100ms each: 20/s, all accepted but one.
		slow := &strayRefusal{every: 50}
		drive(t, l, slow, 2, 100*time.Millisecond, 10*time.Second)
		if got := l.State().Limit; got != before {
			t.Errorf("State().Limit after a slow pool met stray 429s = %v, want %v kept", got, before)
		}
	})
}

// strayRefusal refuses one request in every, as a strict bucket refuses a
// request that jitter brought early.
type strayRefusal struct {
	mu    sync.Mutex
	n     int
	every int
}

func (s *strayRefusal) allow(time.Time) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.n%s.every != 0, time.Second
}

// unlimited takes everything.
type unlimited struct{}

func (unlimited) allow(time.Time) (bool, time.Duration) { return true, 0 }

func TestLimiter_KeepsTheCeilingWhenTheServerHasNoLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 200})
		r := drive(t, l, unlimited{}, 16, 50*time.Millisecond, 10*time.Second)
		if got := len(r.accepted); got < 1990 {
			t.Errorf("accepted in 10s at 200/s without a server limit = %d, want about 2000", got)
		}
	})
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

// stalls plays a client machine so busy that its process stops for stall
// every period: requests that leave the pacer evenly in a stall reach the
// server together at its end, where a strict bucket takes one of them.
type stalls struct {
	server
	start         time.Time
	period, stall time.Duration
}

func (s *stalls) allow(now time.Time) (bool, time.Duration) {
	if in := now.Sub(s.start) % s.period; in < s.stall {
		time.Sleep(s.stall - in)
		now = time.Now()
	}
	return s.server.allow(now)
}

// TestLimiter_BunchedArrivalsAreNotTheLimit: once the limit is measured,
// 429s from requests a busy client bunched do not ratchet it down.
func TestLimiter_BunchedArrivalsAreNotTheLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		bucket := newBucket(100, 1, true)
		drive(t, l, bucket, 16, 30*time.Millisecond, 10*time.Second)
		if lim := l.State().Limit; lim < 95 || lim > 105 {
			t.Fatalf("State().Limit after 10s at a 100/s bucket = %v, want about 100", lim)
		}
		const d = 30 * time.Second
		srv := &stalls{server: bucket, start: time.Now(), period: 250 * time.Millisecond, stall: 40 * time.Millisecond}
		r := drive(t, l, srv, 16, 30*time.Millisecond, d)
		acc, thr := len(r.accepted), len(r.throttled)
		share := float64(acc) / d.Seconds() / 100
		t.Logf("accepted %.3f of the limit, throttled %.2f%% (%d), state %+v", share, 100*float64(thr)/float64(acc+thr), thr, l.State())
		// A stall of 40ms every 250ms loses 3 of the bucket's 25 tokens:
		// 0.88 of the limit is all there is to take.
		if share < 0.70 {
			t.Errorf("accepted %.3f of the limit over %v with bunched arrivals, want >= 0.70", share, d)
		}
		if lim := l.State().Limit; lim < 80 {
			t.Errorf("State().Limit = %v after bunched arrivals at a 100/s bucket, want >= 80", lim)
		}
	})
}
