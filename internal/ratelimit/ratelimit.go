package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"
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
	// Backoff is the first pause when the server refuses everything and
	// gives no Retry-After; it doubles for each further such pause without
	// an accepted request between. Default 250ms.
	Backoff time.Duration
	// MaxPause caps any pause, Retry-After included. Default 1m.
	MaxPause time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
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
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// The law's constants. See the package doc for the law.
const (
	// startMargin is the share of a measured limit the rate first holds at:
	// a strict bucket refuses requests that arrive early by network jitter,
	// so holding exactly at the limit costs 429s.
	startMargin = 0.97
	minMargin   = 0.90
	maxMargin   = 0.99
	marginStep  = 0.01

	// saturated is the share of 429s among a second's answers from which
	// what the server accepted in it is its capacity; manyRefused, from
	// which the margin moves three points at a time.
	saturated    = 0.10
	manyRefused  = 0.05
	minSaturated = 5

	// clump is the share of the interval within which answers come
	// together: paced requests answer about an interval apart.
	clump = 0.25

	// probeHold is how long the rate holds after a decrease before it
	// probes above the measured limit; probeScale sets the cubic's pace:
	// the probe reaches twice the limit probeHold+probeScale after the
	// decrease, and the margin's few points after about a third of
	// probeScale.
	probeHold  = 5 * time.Second
	probeScale = 6 * time.Second

	// startHold is how long the rate holds after an early cut (no limit
	// measured yet) before doubling each second.
	startHold = time.Second

	// clientBound is the share of the rate it holds under which the
	// client, not the server, held back what was sent in the last second.
	clientBound = 0.9

	// closedAfter 429s in a row with nothing accepted for closedFor mean
	// the server is refusing everything: the pool pauses.
	closedAfter = 8
	closedFor   = 100 * time.Millisecond

	// maxEpisode bounds an episode when answers are lost (timeouts, dropped
	// connections) and the count of requests in flight runs high.
	maxEpisode = time.Second
)

// State is the control law's state: what a fleet sharing one budget would
// keep in one row.
type State struct {
	// Rate is the rate set at Since, in requests per second; +Inf while
	// unlimited. The rate in force grows from it with time (see RateAt).
	Rate float64
	// Limit is the server's limit as last measured; 0 while unknown.
	Limit float64
	// Margin is the share of Limit the rate holds at after a decrease.
	Margin float64
	// Since is when Rate was set by a 429; zero before the first.
	Since time.Time
	// PausedUntil is when the pool may send again after a pause.
	PausedUntil time.Time
}

// RateAt is the rate in force at now under ceiling: Rate until Since+hold,
// then growing: doubling each second while the limit is unknown, on a
// cubic above Rate (probing past Limit) once it is measured.
func (s State) RateAt(now time.Time, ceiling float64) float64 {
	r := s.Rate
	if s.Since.IsZero() || math.IsInf(r, 1) {
		return min(r, ceiling)
	}
	d := now.Sub(s.Since)
	switch {
	case s.Limit == 0 && d > startHold:
		r *= math.Exp2(min((d - startHold).Seconds(), 64))
	case s.Limit > 0 && d > probeHold:
		x := (d - probeHold).Seconds() / probeScale.Seconds()
		r += s.Limit * x * x * x
	}
	return min(r, ceiling)
}

// Limiter is the pool-wide pacer.
type Limiter struct {
	cfg     Config
	ceiling float64       // +Inf for no limit
	gate    chan struct{} // one waiter sleeps for the next slot at a time

	mu       sync.Mutex
	st       State
	next     time.Time // the next free departure slot
	waiting  int       // goroutines in Wait
	win      window
	evidence time.Time // the window holds unpaused traffic since here
	start    time.Time // the first departure

	sent, answers int64     // departures; Accepted and Throttled calls
	cutAt         time.Time // the last decrease
	cutAnswers    int64     // answers at the last decrease
	cutInflight   int64     // requests out at the last decrease, and the one slot taken at the old rate
	cutAccepted   int64     // accepted at the last decrease
	accepted      int64     // Accepted calls
	lastAccepted  time.Time // or the first departure, before any
	refusedInARow int
	lastAnswer    time.Time // the last Accepted or Throttled
	pendingAt     time.Time // the first 429 of the clump, not yet judged; zero: none
	pendingN      int       // 429s of the clump
	clumpAccepted bool      // the clump holds an accepted answer
	backoffs      int       // pauses without Retry-After since the last accepted request
	throttles     int64
	paused        time.Duration
}

// New returns a Limiter running at cfg.Rate.
func New(cfg Config) *Limiter {
	cfg = cfg.withDefaults()
	ceiling := cfg.Rate
	if ceiling <= 0 {
		ceiling = math.Inf(1)
	}
	return &Limiter{
		cfg:     cfg,
		ceiling: ceiling,
		gate:    make(chan struct{}, 1),
		st:      State{Rate: ceiling, Margin: startMargin},
	}
}

// catchUp is how late a waiter's departure may be and still keep the
// schedule once the server has shown a limit: the scheduling delays of a
// busy machine, which would otherwise lower the rate, are made up by the
// departures after, but a longer clump of made-up departures would only
// collide at a strict bucket. Until then the rate is the client's own
// ceiling, and a second of lateness is made up (a stalled process must not
// lower the fixed rate).
const (
	catchUp      = 50 * time.Millisecond
	catchUpFixed = time.Second
)

// Wait blocks until a request may leave, or ctx is done.
//
// One waiter at a time holds the gate and sleeps until the next departure
// slot, spaced at the rate in force when it leaves: a decrease takes effect
// at the next slot, with no debt of reservations made at the old rate, and
// a pause at once. Slots follow the schedule from the slot that was due,
// not from the moment a waiter woke, so timer and scheduling lateness on a
// busy machine (up to catchUp) does not add up into a lower rate; a slot
// nobody waited for is idle time, which saves up Burst-1 slots, no more.
func (l *Limiter) Wait(ctx context.Context) error {
	// A stopped run sends nothing more, even where a slot is free: select
	// picks at random among ready cases.
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	// A waiter that finds nobody else waiting comes after idle time: the
	// slot was due with nobody there to take it.
	l.mu.Lock()
	var idleUntil time.Time
	if l.waiting == 0 {
		idleUntil = l.cfg.Now()
	}
	l.waiting++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.waiting--
		l.mu.Unlock()
	}()
	select {
	case l.gate <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-l.gate }()
	for {
		l.mu.Lock()
		now := l.cfg.Now()
		at := maxTime(l.next, l.st.PausedUntil)
		if !now.Before(at) {
			l.depart(now, at, idleUntil)
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		t := time.NewTimer(at.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// depart records a departure at now, due at at, and sets the next slot.
// idleUntil is when the departing waiter came if nobody was waiting
// before it, else zero. l.mu is held.
func (l *Limiter) depart(now, at, idleUntil time.Time) {
	l.settle(now)
	l.sent++
	if l.lastAccepted.IsZero() {
		l.lastAccepted = now
	}
	if l.evidence.IsZero() {
		l.evidence = now
		l.start = now
	}
	l.win.add(now, 0, 0, 1)
	r := l.st.RateAt(now, l.ceiling)
	if math.IsInf(r, 1) {
		l.next = now
		return
	}
	iv := time.Duration(float64(time.Second) / r)
	late := catchUp
	if l.throttles == 0 {
		late = catchUpFixed
	}
	switch {
	case !idleUntil.IsZero() && idleUntil.Sub(at) >= max(iv, catchUp):
		// Nobody waited for the slot: idle time.
		l.next = idleUntil.Add(iv - time.Duration(l.cfg.Burst-1)*iv)
	case now.Sub(at) < max(iv, late):
		l.next = at.Add(iv) // on time, or late: keep the schedule
	default:
		l.next = now.Add(iv)
	}
}

// State returns the control law's state.
func (l *Limiter) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// Stats is a snapshot for progress and summaries.
type Stats struct {
	Rate      float64       // the rate in force; +Inf when unlimited
	Limit     float64       // the server's limit as measured; 0 while unknown
	Throttles int64         // 429s seen
	Paused    time.Duration // total time the pool was held by pauses
}

// Stats reports the limiter's state.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settle(l.cfg.Now())
	return Stats{
		Rate:      l.st.RateAt(l.cfg.Now(), l.ceiling),
		Limit:     l.st.Limit,
		Throttles: l.throttles,
		Paused:    l.paused,
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
