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
	// startMargin is the share of the rate that met the first 429s while
	// the rate grew (or of what a closed server accepted) that the rate
	// drops to: the rate grew for a round trip past the limit before the
	// 429 came back.
	startMargin = 0.97

	// backoff is the share each 429 takes off the rate; creep is the share
	// the rate gains per request it sends at that rate. Their ratio is the
	// share of 429s the rate settles at, where a strict bucket's limit is.
	backoff = 0.01
	creep   = 0.00003

	// floorShare is the share of the limit below which no 429 of an
	// unsaturated server takes the rate; clientBound, the share of the
	// rate in force under which the client was slow: what it sent, not
	// that rate, met a 429.
	floorShare  = 0.90
	clientBound = 0.9

	// saturated is the share of 429s among a second's answers, and spread
	// the count of its 100ms slots they must be found in, from which the
	// server is refusing what it cannot take.
	saturated = 0.10
	spread    = 4

	// refusedShare is the share of 429s among the last three seconds'
	// answers, found in each of them, from which a server whose limit
	// was measured when it closed (a fixed window) is refusing what it
	// cannot take: a window measured over its allowance refuses the last
	// few of each second's requests, in one slot, and need not close
	// again. Not for other limits: a machine that stalls bunches its
	// requests into a strict bucket, which refuses a share of them every
	// second whatever the rate, and a bucket's outages fill seconds with
	// 429s.
	refusedShare = 0.05

	// clump is the share of the interval within which answers come
	// together: paced requests answer about an interval apart.
	clump = 0.25

	// collisionShare is the share of a second's answers, counted as
	// clumps that held a collision, from which 429s clumped with an
	// accepted answer are no longer taken for collisions (see
	// Limiter.tooManyCollisions).
	collisionShare = 0.25

	// probeHold is how long the rate only creeps after a decrease before
	// it probes above itself on a cubic; probeScale sets the cubic's pace:
	// the probe adds the whole limit probeHold+probeScale after the
	// decrease.
	probeHold  = 3 * time.Second
	probeScale = 6 * time.Second

	// startHold is how long the rate holds after an early cut (no limit
	// measured yet) before it doubles every startDouble.
	startHold   = 250 * time.Millisecond
	startDouble = time.Second

	// closedAfter 429s in a row with nothing accepted for closedFor mean
	// the server is refusing everything: the pool pauses.
	closedAfter = 8
	closedFor   = 100 * time.Millisecond

	// reclosed is how soon a server that closed, opened and closed again
	// shows that it opens and closes on a clock (a fixed window).
	reclosed = 2500 * time.Millisecond

	// sameEvent is how soon after the 429s that measured the limit while
	// the rate grew a closure belongs to them: the growth met a server
	// that then refused everything, a fixed window's end.
	sameEvent = 500 * time.Millisecond

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
	// Margin is the share of the rate that met the first 429s (no limit
	// known yet) that the rate drops to.
	Margin float64
	// Since is when Rate was set by a 429; zero before the first.
	Since time.Time
	// PausedUntil is when the pool may send again after a pause.
	PausedUntil time.Time
}

// RateAt is the rate in force at now under ceiling: Rate until
// Since+startHold, then doubling every startDouble while the limit is
// unknown; once it is measured, Rate creeping up by creep per request sent
// at Rate, and after probeHold probing above it on a cubic scaled to the
// larger of Limit and Rate.
func (s State) RateAt(now time.Time, ceiling float64) float64 {
	r := s.Rate
	if s.Since.IsZero() || math.IsInf(r, 1) {
		return min(r, ceiling)
	}
	d := now.Sub(s.Since)
	switch {
	case s.Limit == 0 && d > startHold:
		r *= math.Exp2(min(float64(d-startHold)/float64(startDouble), 64))
	case s.Limit > 0:
		r *= 1 + creep*r*d.Seconds()
		if d > probeHold {
			x := (d - probeHold).Seconds() / probeScale.Seconds()
			r += max(s.Limit, s.Rate) * x * x * x
		}
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
	cutSaturated  bool      // the last decrease found the server saturated
	accepted      int64     // Accepted calls
	lastAccepted  time.Time // or the first departure, before any
	refusedInARow int
	closedAt      time.Time // the server last began to refuse everything
	reopened      bool      // it accepted a request since
	closedLimit   bool      // the limit was measured when it did, and may be again
	reclosures    int       // closures in a row since closuresFrom, each within reclosed of the one before
	closuresFrom  time.Time // the first of them
	grownAt       time.Time // the rate that grew past the limit at the start measured it
	lastAnswer    time.Time // the last Accepted or Throttled
	pendingAt     time.Time // the first 429 of the clump, not yet judged; zero: none
	pendingN      int       // 429s of the clump
	clumpAccepted bool      // the clump holds an accepted answer
	clumpCollided bool      // its 429s were taken for collisions, and counted (see collide)
	backoffs      int       // pauses without Retry-After since the last accepted request
	throttles     int64
	paused        time.Duration

	sleeper sleeper // the last of each wait

	// late, when set, is how long after its timer a waiter wakes: a test
	// hook that plays a busy machine's scheduler.
	late func() time.Duration
}

// New returns a Limiter running at cfg.Rate.
func New(cfg Config) *Limiter {
	cfg = cfg.withDefaults()
	ceiling := cfg.Rate
	if ceiling <= 0 {
		ceiling = math.Inf(1)
	}
	l := &Limiter{
		cfg:     cfg,
		ceiling: ceiling,
		gate:    make(chan struct{}, 1),
		st:      State{Rate: ceiling, Margin: startMargin},
	}
	l.sleeper.now = cfg.Now
	return l
}

// catchUp is how late a waiter's departure may be and still keep the
// schedule while the server has never throttled: a stalled process must
// not lower the fixed rate, so up to a second of lateness is made up. Once
// the server has throttled (or the state holds a limit), lateness is never
// made up: a departure that left early to catch up would follow the late
// one closer than the interval, which a strict bucket refuses. A waiter that comes with
// nobody waiting more than idleAfter (or an interval) after its slot comes
// after idle time, not late.
const (
	catchUp   = time.Second
	idleAfter = 50 * time.Millisecond
)

// Wait blocks until a request may leave, or ctx is done: Reserve, and
// the departure at once.
func (l *Limiter) Wait(ctx context.Context) error {
	leave, err := l.Reserve(ctx)
	if err != nil {
		return err
	}
	return leave(ctx)
}

// Reserve blocks until shortly before a request may leave (fineWait at
// most), or until ctx is done, and returns leave, which sleeps the rest of
// the wait finely and marks the departure: the caller builds its request
// meanwhile and calls leave once, just before it hands the request to the
// transport, so that requests leave as evenly as they are paced whatever
// the work between the slot and the wire. A reservation never left spends
// its slot.
//
// One waiter at a time holds the gate and sleeps until the next departure
// slot, spaced at the rate in force when it leaves: a decrease takes effect
// at the next slot, with no debt of reservations made at the old rate, and
// a pause at once. While the server has never throttled, slots follow the
// schedule from the slot that was due, not from the moment a waiter woke,
// so timer and scheduling lateness on a busy machine (up to catchUp) does
// not add up into a lower rate; once it has, each slot follows from the
// departure before it (see the package doc), as leave marks it. A slot
// nobody waited for is idle time, which saves up Burst-1 slots, no more.
func (l *Limiter) Reserve(ctx context.Context) (leave func(context.Context) error, err error) {
	// A stopped run sends nothing more, even where a slot is free: select
	// picks at random among ready cases.
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
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
		return nil, context.Cause(ctx)
	}
	defer func() { <-l.gate }()
	lead := l.sleeper.lead()
	for {
		l.mu.Lock()
		now := l.cfg.Now()
		at := maxTime(l.next, l.st.PausedUntil)
		if !now.Before(at.Add(-lead)) {
			left := maxTime(now, at)
			lost := l.depart(now, left, at, idleUntil)
			l.mu.Unlock()
			return func(ctx context.Context) error { return l.leave(ctx, left, lost) }, nil
		}
		l.mu.Unlock()
		if err := sleepTimer(ctx, at.Add(-lead).Sub(now), l.late); err != nil {
			return nil, err
		}
	}
}

// leave sleeps until the departure at, and moves the next slot to lost
// after the moment the request really left, when depart said lateness is
// lost. A slot reserved before (the work between Reserve and leave took
// longer than the interval) stays where it was. A pause that began since
// the reservation does not hold it: the caller's context may not end (a
// request out is never cancelled), and the wait is at most the lead.
func (l *Limiter) leave(ctx context.Context, at time.Time, lost time.Duration) error {
	if err := l.sleeper.until(ctx, at); err != nil {
		return err
	}
	if lost > 0 {
		l.mu.Lock()
		l.next = maxTime(l.next, l.cfg.Now().Add(lost))
		l.mu.Unlock()
	}
	return nil
}

// depart records a departure reserved at now to leave at left, due at
// at, and sets the next slot. idleUntil is when the departing waiter came
// if nobody was waiting before it, else zero. It returns the interval the
// next slot must keep after the request really leaves (see leave), 0 when
// the schedule holds. l.mu is held.
func (l *Limiter) depart(now, left, at, idleUntil time.Time) (lost time.Duration) {
	l.settle(now)
	l.sent++
	if l.lastAccepted.IsZero() {
		l.lastAccepted = left
	}
	if l.evidence.IsZero() {
		l.evidence = left
		l.start = left
	}
	l.win.add(now, 0, 0, 1)
	r := l.st.RateAt(left, l.ceiling)
	if math.IsInf(r, 1) {
		l.next = left
		return 0
	}
	iv := time.Duration(float64(time.Second) / r)
	switch {
	case !idleUntil.IsZero() && idleUntil.Sub(at) >= max(iv, idleAfter):
		// Nobody waited for the slot: idle time.
		l.next = idleUntil.Add(iv - time.Duration(l.cfg.Burst-1)*iv)
	case l.throttles > 0 || l.st.Limit > 0:
		l.next = left.Add(iv) // lateness is lost
		return iv
	case left.Sub(at) < max(iv, catchUp):
		l.next = at.Add(iv) // on time, or late: keep the schedule
	default:
		l.next = left.Add(iv)
	}
	return 0
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
