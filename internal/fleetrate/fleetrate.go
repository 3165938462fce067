package fleetrate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
)

// Budget is a target's shared rate budget; *postgres.Ledger is one (see
// its Reserve and Publish for what each statement promises).
type Budget interface {
	// Reserve reserves n slots at rate when version is the budget's, and
	// returns them with the budget as it is.
	Reserve(ctx context.Context, target string, n int, rate float64, version int64) (postgres.Reservation, error)
	// Publish writes the law's state, written when version is the
	// budget's or law.Since is newer than the budget's, and returns the
	// budget as it is.
	Publish(ctx context.Context, target string, law postgres.Law, version int64) (postgres.Budget, error)
}

// Config configures a Pacer; zero fields take the documented defaults.
type Config struct {
	// Budget is the shared budget, Target the target it is kept for.
	Budget Budget
	Target string
	// Rate caps this process alone, in requests per second, under the
	// fleet's budget; 0: only the budget.
	Rate float64
	// MaxBatch is the most slots one reservation takes, and so the most a
	// process that dies wastes. Default 4.
	MaxBatch int
	// GiveUp is how long reservations may fail in a row before Wait
	// returns the error. Default 30s.
	GiveUp time.Duration
	// Law configures the local law's MinRate, Backoff and MaxPause; its
	// Rate and Now are the Pacer's.
	Law ratelimit.Config
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 4
	}
	if c.GiveUp <= 0 {
		c.GiveUp = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Law.MaxPause <= 0 {
		c.Law.MaxPause = time.Minute // ratelimit's default, which pauseErr reads
	}
	c.Law.Rate, c.Law.Now = 0, c.Now
	return c
}

func (c Config) validate() error {
	switch {
	case c.Budget == nil:
		return errors.New("fleetrate: Config.Budget is nil")
	case c.Target == "":
		return errors.New("fleetrate: Config.Target is empty")
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("fleetrate: Config.Rate %v: want 0 (none) or more", c.Rate)
	}
	return nil
}

const (
	// batchSpan is how much of the schedule one reservation takes, in
	// slots at the rate in force (Config.MaxBatch at most, one at least).
	batchSpan = 20 * time.Millisecond
	// unlimitedBatch is how many slots a reservation takes when there is
	// no rate: they only count this process's share, and each reservation
	// is a commit that every process of the target waits its turn for, so
	// few of them (a law that finds a limit drops the slots left).
	unlimitedBatch = 512
	// minLate is how late a slot may still be taken, when more than its
	// interval: a reservation's first slot may be the database's now,
	// which is half a round trip in the past when the answer arrives.
	minLate = 5 * time.Millisecond
	// minRate is the fleet's rate when the budget's state gives none.
	minRate = 1.0
)

// Pacer paces one process's requests within a fleet's shared budget. It
// implements the importer's Pacer. It is safe for concurrent use.
type Pacer struct {
	cfg  Config
	law  *ratelimit.Limiter // the law, on this process's evidence, at its share's scale
	gate chan struct{}      // one waiter takes slots and reserves at a time

	mu      sync.Mutex
	budget  postgres.Budget // as the last statement left it
	clock   clock           // the database's clock
	share   share           // this process's share of the fleet's slots
	adopted ratelimit.State // the law's state as last adopted or published
	dirty   bool            // the law changed it since: publish before reserving
	slots   []time.Time     // reserved, not yet taken, on the local clock
	iv      time.Duration   // their interval
	ownNext time.Time       // when Config.Rate lets the next request leave
}

// New returns a Pacer on cfg.Budget, whose budget for cfg.Target was read
// as b (postgres.Ledger.OpenBudget) by a statement sent at local time sent
// and answered at received.
func New(cfg Config, b postgres.Budget, sent, received time.Time) (*Pacer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Pacer{cfg: cfg, law: ratelimit.New(cfg.Law), gate: make(chan struct{}, 1), share: newShare()}
	p.mu.Lock()
	p.adopted = p.law.State()
	p.adopt(b, sent, received)
	p.mu.Unlock()
	return p, nil
}

// Limiter is the local law, for progress displays: its rate is this
// process's share of the budget's.
func (p *Pacer) Limiter() *ratelimit.Limiter { return p.law }

// Accepted tells the law the server took a request.
func (p *Pacer) Accepted() { p.law.Accepted() }

// Throttled tells the law the server answered 429. A decrease it makes
// reaches the fleet before this process's next reservation.
func (p *Pacer) Throttled(retryAfter time.Duration) { p.law.Throttled(retryAfter) }

// Pause holds every process of the fleet for d (a doubling backoff when
// 0), from this process's next reservation on, and this one at once.
func (p *Pacer) Pause(d time.Duration) { p.law.Pause(d) }

// Reserve is Wait, for the importer: the request leaves at once.
func (p *Pacer) Reserve(ctx context.Context) (leave func(context.Context) error, err error) {
	return nil, p.Wait(ctx)
}

// Wait blocks until a request may leave, or ctx is done: at the next slot
// this process reserved, reserving a few more when none is left.
func (p *Pacer) Wait(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	select {
	case p.gate <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-p.gate }()
	var failing time.Time
	for {
		at, err := p.next(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return context.Cause(ctx)
		case err != nil:
			now := p.cfg.Now()
			if failing.IsZero() {
				failing = now
			}
			if now.Sub(failing) >= p.cfg.GiveUp {
				return err
			}
			at = now.Add(min(max(now.Sub(failing), 50*time.Millisecond), time.Second))
		default:
			failing = time.Time{}
		}
		now := p.cfg.Now()
		if err := p.pauseErr(now); err != nil {
			return err
		}
		if at.IsZero() || !now.Before(at) {
			if err == nil && p.take(now, at) {
				return nil
			}
			continue
		}
		if err := sleep(ctx, at.Sub(now)); err != nil {
			return err
		}
	}
}

// pauseErr returns an error when the budget is paused past the longest
// pause a law sets (Config.Law.MaxPause, and a second for the clocks):
// written by a process configured otherwise, or by hand. Wait then ends
// the run rather than sleep it out, no request leaving and no stop rule
// firing meanwhile.
func (p *Pacer) pauseErr(now time.Time) error {
	p.mu.Lock()
	until := p.budget.Law.PausedUntil
	local := p.clock.toLocal(until)
	p.mu.Unlock()
	if until.IsZero() || local.Sub(now) <= p.cfg.Law.MaxPause+time.Second {
		return nil
	}
	return fmt.Errorf("fleetrate: the budget of %s is paused until %s, longer than any pause (%v): clear its paused_until in the ledger's budgets, or wait and run again",
		p.cfg.Target, until.Format(time.RFC3339), p.cfg.Law.MaxPause)
}

// next returns the slot to leave at, reserving when none is left; zero
// when the state changed and the caller must ask again.
func (p *Pacer) next(ctx context.Context) (time.Time, error) {
	p.mu.Lock()
	now := p.cfg.Now()
	p.noteLaw()
	p.dropLate(now)
	if len(p.slots) > 0 {
		at := p.slots[0]
		p.mu.Unlock()
		return at, nil
	}
	if own := p.ownNext; own.After(now) {
		p.mu.Unlock()
		return own, nil
	}
	if p.dirty {
		st := p.law.State()
		law, version := p.shared(st), p.budget.Version
		p.mu.Unlock()
		start := p.cfg.Now()
		b, err := p.cfg.Budget.Publish(ctx, p.cfg.Target, law, version)
		if err != nil {
			return time.Time{}, fmt.Errorf("fleetrate: %w", err)
		}
		p.mu.Lock()
		p.dirty, p.adopted = false, st
		p.adopt(b, start, p.cfg.Now())
		p.mu.Unlock()
		return time.Time{}, nil
	}
	rate, version := p.rate(now), p.budget.Version
	n := p.batch(rate)
	p.mu.Unlock()
	start := p.cfg.Now()
	r, err := p.cfg.Budget.Reserve(ctx, p.cfg.Target, n, rate, version)
	if err != nil {
		return time.Time{}, fmt.Errorf("fleetrate: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	end := p.cfg.Now()
	if r.Reserved {
		p.share.add(end, int64(r.N), r.Budget.Total)
	}
	p.adopt(r.Budget, start, end)
	if r.Reserved && !p.dirty {
		p.iv = r.Interval
		for i := range r.N {
			p.slots = append(p.slots, p.clock.toLocal(r.Slot(i)))
		}
	}
	return time.Time{}, nil
}

// take departs at now on the slot at, unless the slots changed since
// next returned it.
func (p *Pacer) take(now, at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noteLaw()
	if len(p.slots) == 0 || !p.slots[0].Equal(at) || p.dirty {
		return false
	}
	p.slots = p.slots[1:]
	if p.cfg.Rate > 0 {
		// The process's own schedule keeps its pace when its slot came
		// later than its own time (other processes' slots were first),
		// by up to one of its intervals: its cap holds on average.
		iv := time.Duration(float64(time.Second) / p.cfg.Rate)
		p.ownNext = maxTime(p.ownNext, now.Add(-iv)).Add(iv)
	}
	p.law.Departed()
	return true
}

// noteLaw notes a change the law made to the state it adopted: the
// slots reserved at the old rate are dropped, and the change is published
// before the next reservation. p.mu is held.
func (p *Pacer) noteLaw() {
	if p.dirty || p.law.State() == p.adopted {
		return
	}
	p.dirty = true
	p.slots = p.slots[:0]
}

// dropLate drops the slots too late to take: a request sent long after
// its slot would meet the next process's at the server. p.mu is held.
func (p *Pacer) dropLate(now time.Time) {
	if p.iv <= 0 {
		return
	}
	late := max(p.iv, minLate)
	i := 0
	for i < len(p.slots) && now.Sub(p.slots[i]) > late {
		i++
	}
	p.slots = p.slots[i:]
}

// rate is the fleet's rate in force at now: the shared state's under the
// budget's ceiling. Never 0, which Reserve would take for no limit: a
// row written by hand is no reason to send without one. p.mu is held.
func (p *Pacer) rate(now time.Time) float64 {
	r := p.sharedState().RateAt(now, ceiling(p.budget.Ceiling))
	if !(r > 0) {
		return minRate
	}
	return r
}

// batch is how many slots to reserve at rate. p.mu is held.
func (p *Pacer) batch(rate float64) int {
	if math.IsInf(rate, 1) {
		if p.cfg.Rate > 0 {
			return 1
		}
		return unlimitedBatch
	}
	if p.cfg.Rate > 0 && p.cfg.Rate < rate {
		return 1 // this process's cap spaces its slots wider than the fleet's
	}
	return min(max(int(rate*batchSpan.Seconds()), 1), p.cfg.MaxBatch)
}

func ceiling(c float64) float64 {
	if c <= 0 {
		return math.Inf(1)
	}
	return c
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
