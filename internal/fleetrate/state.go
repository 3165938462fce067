package fleetrate

import (
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
)

// The shared state and the local law's: the budget holds the fleet's
// rate and limit on the database's clock; the local law holds them at
// this process's share of the fleet's slots, on the local clock, since
// the evidence it judges (what the server accepted and refused in the
// last second) is this process's alone.

// adopt takes b, read by a statement sent at local time sent and
// answered at received, as the budget, and its law's state as the local
// law's, unless the local law has a change to publish first. p.mu is held.
func (p *Pacer) adopt(b postgres.Budget, sent, received time.Time) {
	p.budget = b
	p.clock.observe(b.Now, sent, received)
	p.noteLaw()
	if p.dirty {
		return
	}
	st := p.scaled(p.sharedState(), p.share.of())
	p.law.Adopt(st)
	p.adopted = st
}

// sharedState is the budget's law on the local clock, at the fleet's
// scale: before any process published it, the budget's ceiling. p.mu is
// held.
func (p *Pacer) sharedState() ratelimit.State {
	law := p.budget.Law
	if !law.Published() {
		return ratelimit.State{Rate: ceiling(p.budget.Ceiling), Margin: p.adopted.Margin, PausedUntil: p.clock.toLocal(law.PausedUntil)}
	}
	return ratelimit.State{Rate: law.Rate, Limit: law.Limit, Margin: law.Margin,
		Since: p.clock.toLocal(law.Since), PausedUntil: p.clock.toLocal(law.PausedUntil)}
}

// scaled is st at share s of the fleet.
func (p *Pacer) scaled(st ratelimit.State, s float64) ratelimit.State {
	st.Rate *= s
	st.Limit *= s
	return st
}

// shared is the local law's state st as the budget holds it. p.mu is
// held.
func (p *Pacer) shared(st ratelimit.State) postgres.Law {
	s := p.share.of()
	return postgres.Law{Rate: st.Rate / s, Limit: st.Limit / s, Margin: st.Margin,
		Since: p.clock.toDB(st.Since), PausedUntil: p.clock.toDB(st.PausedUntil)}
}

// clock maps the database's clock to the local one: db on the database's
// clock was local here, to within half the round trip rtt of the
// statement that read it. The statement with the shortest round trip
// gives the best map, so a slow one (a loaded machine, a busy database)
// replaces it only as it ages: clocks of two machines drift apart.
type clock struct {
	db, local time.Time
	rtt       time.Duration
}

// clockAging is how much a map's round trip counts for less per unit of
// its age: a millisecond a second.
const clockAging = 1000

// observe notes a statement that read the database's clock as db, sent
// at sent and answered at received.
func (c *clock) observe(db, sent, received time.Time) {
	rtt := received.Sub(sent)
	mid := sent.Add(rtt / 2)
	if c.db.IsZero() || rtt <= c.rtt+mid.Sub(c.local)/clockAging {
		*c = clock{db: db, local: mid, rtt: rtt}
	}
}

func (c clock) toLocal(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return c.local.Add(t.Sub(c.db))
}

func (c clock) toDB(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return c.db.Add(t.Sub(c.local))
}

// shareWindow is how far back a process's share of the fleet's slots is
// measured: the second over which the law counts its evidence.
const shareWindow = time.Second

// minShare bounds a share from below, so that a process that sent little
// does not scale its few answers into a fleet's.
const minShare = 0.01

// share is this process's share of the slots the fleet reserved over the
// last shareWindow: what scales the law's evidence, which is this
// process's, to the fleet's.
type share struct {
	samples []shareSample
	mine    int64
	s       float64
}

type shareSample struct {
	at          time.Time
	mine, fleet int64 // slots reserved by this process and by the fleet, counting this sample's
}

func newShare() share { return share{s: 1} }

// add notes n slots reserved at at, after which the fleet had reserved
// fleet slots in all.
func (s *share) add(at time.Time, n, fleet int64) {
	s.mine += n
	s.samples = append(s.samples, shareSample{at: at, mine: s.mine, fleet: fleet})
	drop := 0
	for drop+1 < len(s.samples) && at.Sub(s.samples[drop+1].at) >= shareWindow {
		drop++
	}
	s.samples = s.samples[drop:]
	old := s.samples[0]
	if d := fleet - old.fleet; d > 0 {
		s.s = min(max(float64(s.mine-old.mine)/float64(d), minShare), 1)
	}
}

// of is the share: 1 until the fleet's slots were counted over some time.
func (s *share) of() float64 { return s.s }
