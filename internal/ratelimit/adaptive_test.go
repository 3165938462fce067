package ratelimit_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
)

// The law against a client machine's noise, in the bubble: waiters that
// wake late and requests that take a varying time to reach the server, as
// a machine's scheduler makes them, drawn from a seeded source.

// jitter draws delays: one in every up to large, the others up to small.
type jitter struct {
	mu           sync.Mutex
	rng          *rand.Rand
	small, large time.Duration
	every        int
}

func newJitter(seed uint64, small, large time.Duration, every int) *jitter {
	return &jitter{rng: rand.New(rand.NewPCG(seed, seed)), small: small, large: large, every: every}
}

func (j *jitter) draw() time.Duration {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rng.IntN(j.every) == 0 {
		return time.Duration(j.rng.Int64N(int64(j.large)))
	}
	return time.Duration(j.rng.Int64N(int64(j.small)))
}

// delayed plays the way from the pacer to the server: each request
// reaches srv after a delay drawn from j.
type delayed struct {
	server
	j *jitter
}

func (d *delayed) allow(time.Time) (bool, time.Duration) {
	time.Sleep(d.j.draw())
	return d.server.allow(time.Now())
}

// noisy returns a limiter with ceiling whose waiters wake late (up to
// 0.2ms, one in twenty up to 3ms) and srv behind a way that takes up to
// 0.2ms: a machine at rest, as its scheduler wakes a waiter (a
// nanosleep's lateness on a 2-core VM: median 0.1ms, 99th percentile
// 2.2ms).
func noisy(seed uint64, ceiling float64, srv server) (*ratelimit.Limiter, server) {
	l := ratelimit.New(ratelimit.Config{Rate: ceiling})
	ratelimit.SetLateWakeUps(l, newJitter(seed, 200*time.Microsecond, 3*time.Millisecond, 20).draw)
	return l, &delayed{server: srv, j: newJitter(seed+100, 200*time.Microsecond, 200*time.Microsecond, 1)}
}

// shares returns the accepted requests of r per second as a share of
// limit over d, and the share of requests refused.
func shares(r *run, limit float64, d time.Duration) (share, refused float64) {
	acc, thr := len(r.accepted), len(r.throttled)
	return float64(acc) / d.Seconds() / limit, float64(thr) / float64(acc+thr)
}

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

// TestLimiter_StallsAreNotTheLimit: a machine so busy that a waiter wakes
// up to 30ms late one time in ten sends less than its rate, and the
// requests after a stall reach the bucket close together. The limit
// measured before stays, and the pool takes most of what the stalls leave.
func TestLimiter_StallsAreNotTheLimit(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l, srv := noisy(7, 400, newBucket(100, 1, true))
		drive(t, l, srv, 16, 30*time.Millisecond, 10*time.Second)
		before := l.State().Limit
		if before < 95 || before > 110 {
			t.Fatalf("State().Limit after 10s at a 100/s bucket = %v, want about 100", before)
		}
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

// TestLimiter_FollowsAMovingLimitThroughJitter: a limit of 100/s that
// drops to 50/s at 10s and rises back at 20s, on a machine at rest: 429s
// stop within 5s of the drop, the pool is back at the limit within 30s of
// the rise, and it takes 0.85 of what the moving limit allows at least.
func TestLimiter_FollowsAMovingLimitThroughJitter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const d = 50 * time.Second
		l, srv := noisy(11, 400, newBucket(100, 1, true, step{10 * time.Second, 50}, step{20 * time.Second, 100}))
		r := drive(t, l, srv, 16, 30*time.Millisecond, d)
		share, refused := shares(r, (10*100+10*50+30*100)/d.Seconds(), d)
		t.Logf("accepted %.3f of the moving limit, refused %.2f%%, state %+v", share, 100*refused, l.State())
		if _, thr := r.between(r.start, 15*time.Second, 20*time.Second); thr > 2 {
			t.Errorf("429s 5-10s after the limit dropped to 50/s = %d, want at most 2", thr)
		}
		if acc, _ := r.between(r.start, 45*time.Second, 50*time.Second); acc < 5*90 {
			t.Errorf("accepted 25-30s after the limit rose to 100/s = %d in 5s, want >= 450", acc)
		}
		if share < 0.85 {
			t.Errorf("accepted %.3f of the moving limit, want >= 0.85", share)
		}
	})
}

// strayOnce refuses the nth request it sees and takes all others: a
// server without a limit, behind a proxy that refused once.
type strayOnce struct {
	mu   sync.Mutex
	n, i int
}

func (s *strayOnce) allow(time.Time) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.i++
	return s.i != s.n, time.Second
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
