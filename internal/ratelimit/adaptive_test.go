package ratelimit_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
)

// TestLimiter_HoldsAStrictBucketThroughJitter: late departures are not
// made up by early ones (which a bucket of burst 1 refuses), and the rate
// creeps up to where few 429s come: the pool holds 0.95 of the limit with
// 1% refused or less.
func TestLimiter_HoldsAStrictBucketThroughJitter(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("Seed", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const d = 30 * time.Second
				l, srv := noisy(seed, 400, newBucket(100, 1, true))
				r := drive(t, l, srv, 16, 10*time.Millisecond, d)
				share, refused := shares(r, 100, d)
				t.Logf("accepted %.3f of the limit, refused %.2f%%, state %+v", share, 100*refused, l.State())
				if share < 0.95 || refused > 0.01 {
					t.Errorf("accepted %.3f of the limit, refused %.3f of requests; want >= 0.95 and <= 0.01", share, refused)
				}
			})
		})
	}
}

// atTheLimit returns a noisy limiter (see noisy) that has run for 10s
// against a 100/s bucket of burst 1 at latency, the bucket, and the limit
// it measured, about 100.
func atTheLimit(t *testing.T, seed uint64, latency time.Duration) (*ratelimit.Limiter, server, float64) {
	t.Helper()
	l, srv := noisy(seed, 400, newBucket(100, 1, true))
	drive(t, l, srv, 16, latency, 10*time.Second)
	limit := l.State().Limit
	if limit < 95 || limit > 110 {
		t.Fatalf("State().Limit after 10s at a 100/s bucket = %v, want about 100", limit)
	}
	return l, srv, limit
}

// TestLimiter_StallsAreNotTheLimit: a machine so busy that a waiter wakes
// up to 30ms late one time in ten sends less than its rate, and the
// requests after a stall reach the bucket close together. The limit
// measured before stays, and the pool takes most of what the stalls leave.
func TestLimiter_StallsAreNotTheLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l, srv, before := atTheLimit(t, 7, 30*time.Millisecond)
		const d = 30 * time.Second
		ratelimit.SetLateWakeUps(l, newJitter(8, 100*time.Microsecond, 30*time.Millisecond, 10).draw)
		share, refused := shares(drive(t, l, srv, 16, 30*time.Millisecond, d), 100, d)
		t.Logf("accepted %.3f of the limit, refused %.2f%%, state %+v", share, 100*refused, l.State())
		if lim := l.State().Limit; lim < 0.95*before {
			t.Errorf("State().Limit after 30s of stalls = %v, want %v kept", lim, before)
		}
		// The stalls cost 1.5ms a departure on average: 0.87 is all
		// there is to take.
		if share < 0.80 {
			t.Errorf("accepted %.3f of the limit through stalls, want >= 0.80", share)
		}
	})
}

// TestLimiter_AHiccupIsNotTheLimit: 150ms in which every request is
// refused, an eighth of a second's requests, is no saturation: the limit
// stays, and the rate with it.
func TestLimiter_AHiccupIsNotTheLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l, srv, before := atTheLimit(t, 13, 10*time.Millisecond)
		h := &hiccup{server: srv, start: time.Now(), from: 2 * time.Second, d: 150 * time.Millisecond}
		r := drive(t, l, h, 16, 10*time.Millisecond, 10*time.Second)
		if lim := l.State().Limit; lim < 0.95*before {
			t.Errorf("State().Limit after a hiccup = %v, want %v kept", lim, before)
		}
		if acc, _ := r.between(r.start, 4*time.Second, 10*time.Second); acc < 6*90 {
			t.Errorf("accepted 2-8s after a hiccup = %d in 6s, want >= 540", acc)
		}
	})
}

// TestLimiter_FollowsAMovingLimitThroughJitter: a limit of 100/s that
// drops to 50/s at 10s and rises back at 20s, on a machine at rest: 429s
// fall to the trickle of a jittered bucket within 5s of the drop (at most
// 3 in the next 5s, where 20 noise sequences give 1-3), the pool is back at
// the limit within 30s of the rise, and it takes 0.85 of what the moving
// limit allows at least.
func TestLimiter_FollowsAMovingLimitThroughJitter(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{11, 12, 13} {
		t.Run(fmt.Sprint("Seed", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const d = 50 * time.Second
				l, srv := noisy(seed, 400, newBucket(100, 1, true, step{10 * time.Second, 50}, step{20 * time.Second, 100}))
				r := drive(t, l, srv, 16, 30*time.Millisecond, d)
				share, refused := shares(r, (10*100+10*50+30*100)/d.Seconds(), d)
				t.Logf("accepted %.3f of the moving limit, refused %.2f%%, state %+v", share, 100*refused, l.State())
				if _, thr := r.between(r.start, 15*time.Second, 20*time.Second); thr > 3 {
					t.Errorf("429s 5-10s after the limit dropped to 50/s = %d, want at most 3", thr)
				}
				if acc, _ := r.between(r.start, 45*time.Second, 50*time.Second); acc < 5*90 {
					t.Errorf("accepted 25-30s after the limit rose to 100/s = %d in 5s, want >= 450", acc)
				}
				if share < 0.85 {
					t.Errorf("accepted %.3f of the moving limit, want >= 0.85", share)
				}
			})
		})
	}
}

// TestLimiter_NoLimitKeepsTheCeiling: against a server without a limit
// the pool runs at the ceiling and measures no limit, even when one early
// 429 came: the server accepted all it was sent until then, so the rate
// is hardly cut.
func TestLimiter_NoLimitKeepsTheCeiling(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		srv  server
	}{
		{"NeverRefuses", unlimited{}},
		{"RefusesTheFifth", &strayOnce{n: 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const d = 10 * time.Second
				l := ratelimit.New(ratelimit.Config{Rate: 200})
				srv := &delayed{server: tt.srv, j: newJitter(5, 100*time.Microsecond, 100*time.Microsecond, 1)}
				share, _ := shares(drive(t, l, srv, 16, 50*time.Millisecond, d), 200, d)
				t.Logf("accepted %.3f of the ceiling, state %+v", share, l.State())
				if share < 0.98 {
					t.Errorf("accepted %.3f of the ceiling without a server limit, want >= 0.98", share)
				}
				if lim := l.State().Limit; lim != 0 {
					t.Errorf("State().Limit = %v without a server limit, want 0", lim)
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

// TestLimiter_BunchedArrivalsAreNotTheLimit: once the limit is measured,
// 429s from requests a busy client bunched do not ratchet it down.
func TestLimiter_BunchedArrivalsAreNotTheLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stall time.Duration // every 250ms
		share float64       // of the limit, at least
	}{
		// A stall of 40ms every 250ms loses 3 of the bucket's 25 tokens:
		// 0.88 of the limit is all there is to take.
		{40 * time.Millisecond, 0.70},
		// 70ms: 0.76 is; the bunches refuse 29% of requests, more than
		// the quarter from which 429s that come back with a create are
		// the limit's, but in one clump a stall.
		{70 * time.Millisecond, 0.50},
	} {
		t.Run(fmt.Sprint(tc.stall), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := ratelimit.New(ratelimit.Config{Rate: 400})
				bucket := newBucket(100, 1, true)
				drive(t, l, bucket, 16, 30*time.Millisecond, 10*time.Second)
				if lim := l.State().Limit; lim < 95 || lim > 105 {
					t.Fatalf("State().Limit after 10s at a 100/s bucket = %v, want about 100", lim)
				}
				const d = 30 * time.Second
				srv := &stalls{server: bucket, start: time.Now(), period: 250 * time.Millisecond, stall: tc.stall}
				r := drive(t, l, srv, 16, 30*time.Millisecond, d)
				acc, thr := len(r.accepted), len(r.throttled)
				share := float64(acc) / d.Seconds() / 100
				t.Logf("accepted %.3f of the limit, throttled %.2f%% (%d), state %+v", share, 100*float64(thr)/float64(acc+thr), thr, l.State())
				if share < tc.share {
					t.Errorf("accepted %.3f of the limit over %v with bunched arrivals, want >= %v", share, d, tc.share)
				}
				if lim := l.State().Limit; lim < 80 {
					t.Errorf("State().Limit = %v after bunched arrivals at a 100/s bucket, want >= 80", lim)
				}
			})
		})
	}
}

// TestLimiter_AFixedWindowFoundAcrossTwoOfItsSecondsIsMeasuredAgain: a
// run that starts 0.1s before a fixed window's second ends meets the end
// of one window and the whole next before the server closes, 140 requests
// in its first second. The next time the server closes, what it took since
// it opened again is its limit.
func TestLimiter_AFixedWindowFoundAcrossTwoOfItsSecondsIsMeasuredAgain(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		srv := &fixedWindow{perWindow: 100, start: start.Add(-900 * time.Millisecond)}
		r := drive(t, l, srv, 16, 30*time.Millisecond, 30*time.Second)
		acc, thr := r.between(start, 5*time.Second, 30*time.Second)
		t.Logf("5-30s: accepted %d, throttled %d; state %+v", acc, thr, l.State())
		if lim := l.State().Limit; lim > 105 {
			t.Errorf("State().Limit = %v at a window of 100 a second, want about 100", lim)
		}
		if share := float64(thr) / float64(acc+thr); share > 0.03 {
			t.Errorf("throttled %.1f%% of requests 5-30s, want <= 3%%", 100*share)
		}
	})
}

// TestLimiter_HoldsAFixedWindowWhereverTheRunStartsInItsSecond: a run
// that starts in the last half of a fixed window's second may read it as
// up to twice its allowance, from a rate that grew past it or from what
// it accepted since the start. Two ways it stayed over the window,
// wherever else the server kept it: a rate far above it, paused each
// second by a server that closes, where no second held enough 429s to
// read as saturated (the pauses leave few to count) and unsaturated cuts
// raised the limit again (4-16% of requests refused 5-30s); and a rate
// just above it held by the floor of a limit over-measured, refusing the
// last few of each window's requests (4-6%).
func TestLimiter_HoldsAFixedWindowWhereverTheRunStartsInItsSecond(t *testing.T) {
	t.Parallel()
	for _, latency := range []time.Duration{time.Millisecond, 30 * time.Millisecond} {
		for off := 500 * time.Millisecond; off < time.Second; off += 20 * time.Millisecond {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				l := ratelimit.New(ratelimit.Config{Rate: 400})
				srv := &fixedWindow{perWindow: 100, start: start.Add(-off)}
				r := drive(t, l, srv, 16, latency, 30*time.Second)
				acc, thr := r.between(start, 5*time.Second, 30*time.Second)
				if share := float64(thr) / float64(acc+thr); share > 0.03 || acc < 2375 {
					t.Errorf("latency %v, the window's second %v in at the start: 5-30s accepted %d of 2500, throttled %.1f%%, want >= 2375 and <= 3%%; state %+v",
						latency, off, acc, 100*share, l.State())
				}
			})
		}
	}
}

// TestLimiter_ABucketsRepeatedOutagesAreNotAWindow: a bucket that refuses
// everything for 400ms every second, four times, closes four times in a
// row as a fixed window does; but its limit was not measured when it
// closed, nor by a rate that grew past it just before: it is kept, and
// the pool is back at the limit once the outages end (a law that took each
// closure's second for a window's read the limit down to 7 and accepted
// 0.49 of it over the next 24s).
func TestLimiter_ABucketsRepeatedOutagesAreNotAWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		bucket := newBucket(100, 1, true)
		drive(t, l, bucket, 16, 10*time.Millisecond, 10*time.Second)
		before := l.State().Limit
		start := time.Now()
		srv := &hiccup{server: bucket, start: start, from: 2 * time.Second, d: 400 * time.Millisecond, every: time.Second, n: 4, noRetryAfter: true}
		r := drive(t, l, srv, 16, 10*time.Millisecond, 30*time.Second)
		acc, thr := r.between(start, 6*time.Second, 30*time.Second)
		t.Logf("6-30s: accepted %d, throttled %d; limit %.1f before, state %+v", acc, thr, before, l.State())
		if share := float64(acc) / 24 / 100; share < 0.9 {
			t.Errorf("accepted %.3f of the limit in the 24s after four outages, want >= 0.9", share)
		}
		if lim := l.State().Limit; lim < 0.9*before {
			t.Errorf("State().Limit after four outages = %v, want %v kept", lim, before)
		}
	})
}

// TestLimiter_StallsAfterAnOutageAreNotTheLimit: a bucket that refused
// everything once, then a client machine that stalls 40ms of every 250ms:
// the bucket refuses the stalls' bunches every second, which is no
// evidence of its limit (a law that took a server that once closed for a
// fixed window read the limit down to 69, 0.60 of it accepted).
func TestLimiter_StallsAfterAnOutageAreNotTheLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		bucket := newBucket(100, 1, true)
		drive(t, l, bucket, 16, 30*time.Millisecond, 10*time.Second)
		start := time.Now()
		outage := &hiccup{server: bucket, start: start, from: time.Second, d: 200 * time.Millisecond}
		srv := &stalls{server: outage, start: start.Add(3 * time.Second), period: 250 * time.Millisecond, stall: 40 * time.Millisecond}
		r := drive(t, l, srv, 16, 30*time.Millisecond, 33*time.Second)
		acc, thr := r.between(start, 3*time.Second, 33*time.Second)
		t.Logf("3-33s: accepted %d, throttled %d; state %+v", acc, thr, l.State())
		if share := float64(acc) / 30 / 100; share < 0.7 {
			t.Errorf("accepted %.3f of the limit over 30s of stalls after an outage, want >= 0.7", share)
		}
		if lim := l.State().Limit; lim < 80 {
			t.Errorf("State().Limit after stalls = %v, want >= 80", lim)
		}
	})
}

// TestLimiter_TwoOutagesCloseTogetherAreNotAWindow: a bucket that refuses
// everything twice within 2.5s (200ms each, no Retry-After) closes and
// opens again as a fixed window does, but the limit measured before was
// not a window's: it stays, though the second before the second outage
// held the first one and the client's pace under the limit.
func TestLimiter_TwoOutagesCloseTogetherAreNotAWindow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l, srv, before := atTheLimit(t, 17, 10*time.Millisecond)
		now := time.Now()
		first := &hiccup{server: srv, start: now, from: 2 * time.Second, d: 200 * time.Millisecond, noRetryAfter: true}
		second := &hiccup{server: first, start: now, from: 3500 * time.Millisecond, d: 200 * time.Millisecond, noRetryAfter: true}
		drive(t, l, second, 16, 10*time.Millisecond, 6*time.Second)
		if lim := l.State().Limit; lim < 0.95*before {
			t.Errorf("State().Limit after two outages 1.5s apart = %v, want %v kept", lim, before)
		}
	})
}

// TestLimiter_HoldsABucketThatAnswers429sSoonerThanCreates: a server that
// checks its limit before its handler answers a 429 sooner than a create
// (the sandbox's Latency delays only requests it takes), here by 2ms, so
// each 429 over its limit comes back less than an interval after the
// accepted answer before it, as one that jitter brought early would. The
// law holds it as a server that answers both alike (0.4% refused): a rule
// that let such 429s pass as jitter's kept the pool over the limit with
// half its requests refused.
func TestLimiter_HoldsABucketThatAnswers429sSoonerThanCreates(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const d = 30 * time.Second
		l := ratelimit.New(ratelimit.Config{Rate: 400})
		w := way{toServer: 5 * time.Millisecond, back429: 5 * time.Millisecond, back200: 7 * time.Millisecond}
		r := driveWay(t, l, newBucket(100, 1, true), 32, w, d)
		acc, thr := r.between(r.start, 10*time.Second, d)
		share, refused := float64(acc)/20/100, float64(thr)/float64(acc+thr)
		t.Logf("10-30s: accepted %.3f of the limit, refused %.2f%%, state %+v", share, 100*refused, l.State())
		if share < 0.95 || refused > 0.01 {
			t.Errorf("10-30s: accepted %.3f of the limit, refused %.2f%%; want >= 0.95 and <= 1%%", share, 100*refused)
		}
	})
}

// TestLimiter_HoldsABucketWhose429sComeBackWithTheCreateBefore: a server
// whose creates take about an interval longer than its 429s answers each
// 429 over its limit together with the create sent before it, as a
// starved machine's bunched answers come. Taken for collisions, those
// 429s left the law blind: the pool sat over the limit with half its
// requests refused, at 100/s (creates 5 or 8ms slower) as at 10/s
// (100ms). Once a quarter of a second's answers are such 429s, they are
// the limit's: 100/s is held with 0.5-6% refused, 10/s with 8-12%
// (every approach to the limit refuses half the requests until then).
func TestLimiter_HoldsABucketWhose429sComeBackWithTheCreateBefore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		limit            float64
		back429, back200 time.Duration
		jitter           time.Duration // more on every answer's way back
		share, refused   float64       // at least, at most
	}{
		{"100PerSecondCreates5msSlower", 100, 5 * time.Millisecond, 10 * time.Millisecond, 0, 0.95, 0.02},
		{"100PerSecondCreates8msSlower", 100, 5 * time.Millisecond, 13 * time.Millisecond, 0, 0.90, 0.08},
		{"10PerSecondCreates100msSlower", 10, 20 * time.Millisecond, 120 * time.Millisecond, 10 * time.Millisecond, 0.80, 0.15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const d = 60 * time.Second
				l := ratelimit.New(ratelimit.Config{Rate: 4 * tc.limit})
				w := way{toServer: 5 * time.Millisecond, back429: tc.back429, back200: tc.back200}
				if tc.jitter > 0 {
					w.backJitter = newJitter(5, tc.jitter, tc.jitter, 1)
				}
				r := driveWay(t, l, newBucket(tc.limit, 1, true), 32, w, d)
				acc, thr := r.between(r.start, 20*time.Second, d)
				share, refused := float64(acc)/40/tc.limit, float64(thr)/float64(acc+thr)
				t.Logf("20-60s: accepted %.3f of the limit, refused %.1f%%, state %+v", share, 100*refused, l.State())
				if share < tc.share || refused > tc.refused {
					t.Errorf("20-60s: accepted %.3f of the limit, refused %.1f%%; want >= %v and <= %v%%", share, 100*refused, tc.share, 100*tc.refused)
				}
			})
		})
	}
}
