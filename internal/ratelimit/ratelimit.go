// Package ratelimit paces the whole worker pool against one API budget.
//
// A [Limiter] is a token bucket (golang.org/x/time/rate) whose rate adapts:
// a 429 pauses every worker until the server's Retry-After (or a backoff when
// it gave none) and lowers the rate; time without a 429 raises it again,
// additively, toward the configured ceiling. It so finds a server's real
// limit without being told it, and keeps just under it.
//
// Waiting here never counts as a row's attempt. A Limiter is safe for
// concurrent use. It reads the clock through the time package only, so tests
// run it under testing/synctest.
package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config configures a Limiter; zero fields take the documented defaults.
type Config struct {
	// Rate is the ceiling in requests per second; 0 means no client-side
	// limit until the server throttles.
	Rate float64
	// Burst is how many requests may leave at once after idle time.
	// Default 1: requests are evenly spaced, which is what a server-side
	// bucket tolerates best.
	Burst int
	// MinRate is the floor the rate never drops below. Default 1/s.
	MinRate float64
	// Backoff is the first pause after a 429 without Retry-After; it doubles
	// for each further 429 without an accepted request between. Default 250ms.
	Backoff time.Duration
	// MaxPause caps any pause, Retry-After included. Default 1m.
	MaxPause time.Duration
}

func (c Config) withDefaults() Config {
	if c.Burst <= 0 {
		c.Burst = 1
	}
	if c.MinRate <= 0 {
		c.MinRate = 1
	}
	if c.Backoff <= 0 {
		c.Backoff = 250 * time.Millisecond
	}
	if c.MaxPause <= 0 {
		c.MaxPause = time.Minute
	}
	return c
}

// Limiter is the pool-wide pacer.
type Limiter struct {
	cfg     Config
	ceiling float64 // +Inf for no limit
	bucket  *rate.Limiter

	mu           sync.Mutex
	current      float64   // the rate in force; +Inf while unlimited
	pausedUntil  time.Time // no request leaves before this
	resumedAt    time.Time // end of the pause before the current one
	lastDecrease time.Time
	lastIncrease time.Time
	backoffs     int     // 429s without Retry-After since the last accepted request
	knownLimit   float64 // the server's limit as last measured; 0 when unknown
	knownAt      time.Time
	accepted     window
	throttles    int64
	paused       time.Duration
}

// New returns a Limiter running at cfg.Rate.
func New(cfg Config) *Limiter {
	cfg = cfg.withDefaults()
	ceiling := cfg.Rate
	if ceiling <= 0 {
		ceiling = math.Inf(1)
	}
	l := &Limiter{cfg: cfg, ceiling: ceiling, current: ceiling}
	l.bucket = rate.NewLimiter(toLimit(ceiling), cfg.Burst)
	return l
}

func toLimit(r float64) rate.Limit {
	if math.IsInf(r, 1) {
		return rate.Inf
	}
	return rate.Limit(r)
}

// Wait blocks until a request may leave, or ctx is done.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		until := l.pausedUntil
		l.maybeIncrease(time.Now())
		l.mu.Unlock()
		if d := time.Until(until); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return context.Cause(ctx)
			case <-t.C:
			}
			continue // a new 429 may have moved the pause while we slept
		}
		if err := l.bucket.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err
		}
		l.mu.Lock()
		stillFree := !time.Now().Before(l.pausedUntil)
		l.mu.Unlock()
		if stillFree {
			return nil
		}
	}
}

// Accepted records a request the server did not throttle.
func (l *Limiter) Accepted() {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.backoffs = 0
	l.accepted.add(now)
}

// Throttled records a 429. retryAfter is the server's wait, 0 when it gave
// none. The whole pool pauses, and the rate drops once per episode: 429s
// that answer requests sent before the first one took effect do not count
// again.
func (l *Limiter) Throttled(retryAfter time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.throttles++
	pause := l.pause(now, retryAfter)
	if now.Sub(l.lastDecrease) < time.Second || now.Before(l.lastDecrease.Add(pause)) && !l.lastDecrease.IsZero() {
		return
	}
	l.decrease(now)
}

// Pause holds the whole pool for wait (a doubling backoff when 0) without
// slowing the rate: for an answer that asks to wait but says nothing about
// the rate of creates, such as a 429 from the token endpoint.
func (l *Limiter) Pause(wait time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pause(now, wait)
}

// pause moves the end of the pool's pause to now+wait at least, and returns
// the wait used. l.mu is held.
func (l *Limiter) pause(now time.Time, wait time.Duration) time.Duration {
	if wait <= 0 {
		wait = l.cfg.Backoff << min(l.backoffs, 16)
		l.backoffs++
	}
	wait = min(wait, l.cfg.MaxPause)
	if !now.Before(l.pausedUntil) {
		l.resumedAt = l.pausedUntil // the previous pause ended here
	}
	if until := now.Add(wait); until.After(l.pausedUntil) {
		l.paused += until.Sub(maxTime(now, l.pausedUntil))
		l.pausedUntil = until
	}
	return wait
}

// decrease sets the rate from what the server accepted over the last
// second when that measure is sound, and halves it otherwise. A sound
// measure is remembered as the server's limit: the rate then holds just
// under it instead of probing into it again.
func (l *Limiter) decrease(now time.Time) {
	// What the server accepted in the last second, pauses included, is a
	// rate it surely takes: halving never goes below it.
	next := min(max(l.current/2, l.accepted.count(now, now.Add(-time.Second))), l.current)
	if got, ok := l.accepted.rate(now, l.resumedAt); ok {
		got = min(got, l.current) // a 429 at this rate: the limit is not above it
		next = got * holdShare
		l.knownLimit = got
		l.knownAt = now
	}
	if math.IsInf(next, 1) { // unlimited, and nothing measured yet
		next = max(l.accepted.count(now, now.Add(-time.Second)), l.cfg.MinRate*10)
	}
	l.current = max(next, l.cfg.MinRate)
	l.lastDecrease = now
	l.lastIncrease = now
	l.bucket.SetLimitAt(now, toLimit(l.current))
}

// holdShare is the share of a measured server limit the rate holds at.
const holdShare = 0.98

// holdFor is how long a measured limit caps the rate before probing above
// it again (servers do raise limits).
const holdFor = time.Minute

// maybeIncrease adds 2% of the rate for each full second since the last
// 429 or increase, after 2 quiet seconds, up to the ceiling, and while a
// measured limit is fresh, up to holdShare of it.
func (l *Limiter) maybeIncrease(now time.Time) {
	if l.current >= l.ceiling || l.lastDecrease.IsZero() {
		return
	}
	// After a halving the limit is somewhere below the rate that was
	// refused, and each probe for it costs a pause of Retry-After (a whole
	// second at least): hold the halved rate a while first.
	quiet := 2 * time.Second
	if l.knownLimit == 0 {
		quiet = 30 * time.Second
	}
	if now.Sub(l.lastDecrease) < quiet || now.Before(l.pausedUntil) {
		return
	}
	secs := math.Floor(now.Sub(l.lastIncrease).Seconds())
	if secs < 1 {
		return
	}
	limit := l.ceiling
	if l.knownLimit > 0 && now.Sub(l.knownAt) < holdFor {
		limit = min(limit, l.knownLimit*holdShare)
	}
	l.lastIncrease = l.lastIncrease.Add(time.Duration(secs) * time.Second)
	if l.current >= limit {
		return
	}
	step := max(l.current*0.02, 0.5)
	l.current = min(l.current+secs*step, limit)
	l.bucket.SetLimitAt(now, toLimit(l.current))
}

// Stats is a snapshot for progress and summaries.
type Stats struct {
	Rate      float64       // the rate in force; +Inf when unlimited
	Throttles int64         // 429s seen
	Paused    time.Duration // total time the pool was held by 429s
}

// Stats reports the limiter's state.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Rate: l.current, Throttles: l.throttles, Paused: l.paused}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// window counts accepted requests in 100ms slots over the last 3 seconds:
// long enough that a server's burst allowance weighs little in the measure.
type window struct {
	slots [30]int
	epoch [30]int64 // which 100ms tick each slot holds
	first time.Time // first request ever counted
}

const slot = 100 * time.Millisecond

func (w *window) add(now time.Time) {
	if w.first.IsZero() {
		w.first = now
	}
	tick := now.UnixNano() / int64(slot)
	i := tick % int64(len(w.slots))
	if w.epoch[i] != tick {
		w.epoch[i], w.slots[i] = tick, 0
	}
	w.slots[i]++
}

// count is the requests accepted since from (to slot precision), at most
// the window's length ago.
func (w *window) count(now, from time.Time) float64 {
	tick := now.UnixNano() / int64(slot)
	first := max(from.UnixNano()/int64(slot), tick-int64(len(w.slots))+1)
	n := 0
	for i := range w.slots {
		if w.epoch[i] >= first && w.epoch[i] <= tick {
			n += w.slots[i]
		}
	}
	return float64(n)
}

// rate is accepted requests per second over the unpaused traffic since
// resumed, up to the window's length. ok is false when less than a second
// of it was seen: a server's burst allowance makes a short window read high.
func (w *window) rate(now, resumed time.Time) (float64, bool) {
	if w.first.IsZero() {
		return 0, false
	}
	start := maxTime(w.first, resumed)
	if now.Sub(start) < time.Second {
		return 0, false
	}
	if limit := now.Add(-time.Duration(len(w.slots)-1) * slot); start.Before(limit) {
		start = limit.Truncate(slot)
	}
	return w.count(now, start) / now.Sub(start).Seconds(), true
}
