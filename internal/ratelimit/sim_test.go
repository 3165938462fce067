package ratelimit_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"golang.org/x/time/rate"
)

// The simulated servers and clients the law is tested against, in the
// bubble of testing/synctest.

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
	return driveWay(t, l, srv, workers, way{toServer: latency / 2, back429: latency / 2, back200: latency / 2}, d)
}

// way is a request's round trip where a 429 may come back sooner than a
// create (a server that checks its limit before its handler runs) and
// answers may come back after a varying time.
type way struct {
	toServer         time.Duration
	back429, back200 time.Duration
	backJitter       *jitter // more on every answer's way back; nil: none
}

// driveWay is drive on w: Wait, a request that reaches the server after
// w.toServer and answers after w.back429 or w.back200 (and w.backJitter),
// then Accepted or Throttled.
func driveWay(t *testing.T, l *ratelimit.Limiter, srv server, workers int, w way, d time.Duration) *run {
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
				time.Sleep(w.toServer)
				now := time.Now()
				ok, retryAfter := srv.allow(now)
				mu.Lock()
				if ok {
					r.accepted = append(r.accepted, now)
				} else {
					r.throttled = append(r.throttled, now)
				}
				mu.Unlock()
				back := w.back429
				if ok {
					back = w.back200
				}
				if w.backJitter != nil {
					back += w.backJitter.draw()
				}
				time.Sleep(back)
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

// stalls plays a client machine so busy that its process stops for stall
// every period: requests that leave the pacer evenly in a stall reach the
// server together at its end, where a strict bucket takes one of them;
// from start (before it, none).
type stalls struct {
	server
	start         time.Time
	period, stall time.Duration
}

func (s *stalls) allow(now time.Time) (bool, time.Duration) {
	if in := now.Sub(s.start) % s.period; now.After(s.start) && in < s.stall {
		time.Sleep(s.stall - in)
		now = time.Now()
	}
	return s.server.allow(now)
}

// A client machine's noise, in the bubble: waiters that wake late and
// requests that take a varying time to reach the server, as a machine's
// scheduler makes them, drawn from a seeded source.

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
// 0.2ms: a 2-core VM at rest, whose scheduler wakes a nanosleep about
// 0.1ms late and one in a hundred 2ms late or more.
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

// hiccup refuses every request that reaches srv in [from, from+d) after
// start (a server, or the way to it, that stalled for d), and n such
// outages in all (one when n is 0), each every after the one before; its
// 429s give a Retry-After of a second unless noRetryAfter.
type hiccup struct {
	server
	start        time.Time
	from, d      time.Duration
	every        time.Duration
	n            int
	noRetryAfter bool // its 429s give none
}

func (h *hiccup) allow(now time.Time) (bool, time.Duration) {
	every := max(h.every, h.d)
	if in := now.Sub(h.start) - h.from; in >= 0 && in/every < time.Duration(max(h.n, 1)) && in%every < h.d {
		if h.noRetryAfter {
			return false, 0
		}
		return false, time.Second
	}
	return h.server.allow(now)
}
