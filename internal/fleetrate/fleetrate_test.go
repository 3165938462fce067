package fleetrate

import (
	"context"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
)

// fakeBudget is the budget row in memory, with the statements' rules of
// postgres.Ledger's Reserve and Publish, on a database clock an hour
// ahead of the local one (so a slot used unconverted is far off).
type fakeBudget struct {
	mu    sync.Mutex
	b     postgres.Budget
	tat   time.Time
	slots []time.Time // every slot reserved, on the database's clock
}

const dbAhead = time.Hour

func newFakeBudget(ceiling float64) *fakeBudget {
	return &fakeBudget{b: postgres.Budget{Ceiling: ceiling}}
}

func (f *fakeBudget) now() time.Time { return time.Now().Add(dbAhead).Round(0) }

func (f *fakeBudget) read() postgres.Budget {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.b.Now = f.now()
	return f.b
}

func (f *fakeBudget) Reserve(ctx context.Context, target string, n int, rate float64, version int64) (postgres.Reservation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.b.Now = now
	r := postgres.Reservation{Budget: f.b}
	if version != f.b.Version {
		return r, nil
	}
	if rate > 0 && !math.IsInf(rate, 1) {
		r.Interval = time.Duration(float64(time.Second) / rate).Truncate(time.Microsecond)
	}
	r.First = maxTime(maxTime(f.tat, now), f.b.Law.PausedUntil)
	r.N, r.Reserved = n, true
	f.tat = r.First.Add(time.Duration(n) * r.Interval)
	f.b.Total += int64(n)
	for i := range n {
		f.slots = append(f.slots, r.Slot(i))
	}
	r.Budget = f.b
	return r, nil
}

func (f *fakeBudget) Publish(ctx context.Context, target string, law postgres.Law, version int64) (postgres.Budget, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.b.Now = f.now()
	cur := f.b.Law
	if version == f.b.Version || !law.Since.IsZero() && law.Since.After(cur.Since) {
		f.b.Law = postgres.Law{Rate: law.Rate, Limit: law.Limit, Margin: law.Margin, Since: law.Since, PausedUntil: cur.PausedUntil}
		f.b.Version++
	}
	if law.PausedUntil.After(cur.PausedUntil) {
		f.b.Law.PausedUntil = law.PausedUntil
		f.b.Version++
	}
	return f.b, nil
}

// publish writes law as another process would.
func (f *fakeBudget) publish(law postgres.Law) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.b.Law = law
	f.b.Version++
}

func newPacer(t *testing.T, f *fakeBudget, rate float64) *Pacer {
	t.Helper()
	p, err := New(Config{Budget: f, Target: "t", Rate: rate}, f.read(), time.Now(), time.Now())
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return p
}

// depart has p's pool of workers goroutines take n departures in all and
// returns when each left.
func depart(t *testing.T, p *Pacer, workers, n int) []time.Time {
	t.Helper()
	var mu sync.Mutex
	var out []time.Time
	claimed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				if claimed == n {
					mu.Unlock()
					return
				}
				claimed++
				mu.Unlock()
				if err := p.Wait(t.Context()); err != nil {
					t.Errorf("Wait() = %v", err)
					return
				}
				mu.Lock()
				out = append(out, time.Now())
				mu.Unlock()
				p.Accepted()
			}
		})
	}
	wg.Wait()
	return out
}

// departBoth has two processes' pools, of 4 workers each, take na and
// nb departures at once.
func departBoth(t *testing.T, a *Pacer, na int, b *Pacer, nb int) [2][]time.Time {
	t.Helper()
	var got [2][]time.Time
	var wg sync.WaitGroup
	wg.Go(func() { got[0] = depart(t, a, 4, na) })
	wg.Go(func() { got[1] = depart(t, b, 4, nb) })
	wg.Wait()
	return got
}

// wantSpaced checks that ts are each iv after the one before.
// The rate the law sets creeps up with the time since it was set (a few
// parts in a million a request), so the spacing may be that much short of
// iv.
func wantSpaced(t *testing.T, ts []time.Time, iv time.Duration) {
	t.Helper()
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d > iv || d < iv-iv/1000 {
			t.Fatalf("departure %d is %v after the one before, want %v (less a thousandth at most)", i, d, iv)
		}
	}
}

func TestPacer_DepartsOnTheSlotsReserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBudget(100)
		p := newPacer(t, f, 0)
		got := depart(t, p, 4, 50)
		wantSpaced(t, got, 10*time.Millisecond)
		for i, at := range got {
			if want := f.slots[i].Add(-dbAhead); !at.Equal(want) {
				t.Fatalf("departure %d at %v, want its slot %v", i, at, want)
			}
		}
		if len(f.slots) > 50+p.cfg.MaxBatch {
			t.Errorf("reserved %d slots for 50 departures, want %d at most", len(f.slots), 50+p.cfg.MaxBatch)
		}
	})
}

func TestPacer_ProcessesShareTheBudgetAndTakeADeadOnesShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBudget(100)
		a, b := newPacer(t, f, 0), newPacer(t, f, 0)
		got := departBoth(t, a, 100, b, 100)
		// Together they held the budget's rate: 200 departures in 2s.
		first, last := minMax(append(got[0], got[1]...))
		if span := last.Sub(first); span > 2*time.Second {
			t.Errorf("two processes took %v for 200 departures at 100/s, want 1.99s", span)
		}
		if s := a.share.of(); s < 0.4 || s > 0.6 {
			t.Errorf("a's share of two = %v, want about 0.5", s)
		}
		if r := a.Limiter().Stats().Rate; r < 40 || r > 60 {
			t.Errorf("a's local rate = %v, want about half of 100/s", r)
		}
		// b stops: a alone gets the whole rate from its next reservation.
		time.Sleep(time.Second)
		wantSpaced(t, depart(t, a, 4, 50), 10*time.Millisecond)
	})
}

func TestPacer_APublishedDecreaseSlowsTheNextReservation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBudget(100)
		p := newPacer(t, f, 0)
		depart(t, p, 2, 10)
		f.publish(postgres.Law{Rate: 20, Limit: 25, Margin: 0.9, Since: f.now()})
		got := depart(t, p, 2, 10+p.cfg.MaxBatch)
		// The slots reserved before the decrease go first, at most one
		// batch of them.
		wantSpaced(t, got[p.cfg.MaxBatch:], 50*time.Millisecond)
	})
}

func TestPacer_ALocalDecreaseIsPublished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBudget(100)
		a, b := newPacer(t, f, 0), newPacer(t, f, 0)
		depart(t, a, 1, 150) // a second and a half of evidence, all accepted
		time.Sleep(10 * time.Millisecond)
		a.Throttled(0) // the answer to a request at the next slot
		// The 429's clump is judged at the next departure, an interval
		// later; the one after publishes the decrease.
		time.Sleep(10 * time.Millisecond)
		depart(t, a, 1, 2)
		if law := f.read().Law; !law.Published() || law.Rate >= 100 || law.Rate < 80 {
			t.Fatalf("the budget's law after a 429 = %+v, want a rate a little under 100/s", law)
		}
		got := depart(t, b, 2, 10)
		want := time.Duration(float64(time.Second) / f.read().Law.Rate).Truncate(time.Microsecond)
		wantSpaced(t, got, want)
	})
}

func TestPacer_APauseHoldsTheFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBudget(100)
		a, b := newPacer(t, f, 0), newPacer(t, f, 0)
		depart(t, a, 1, 3)
		start := time.Now()
		a.Pause(3 * time.Second)
		depart(t, a, 1, 1) // publishes the pause before reserving
		if got := depart(t, b, 1, 1); got[0].Sub(start) < 3*time.Second {
			t.Errorf("b left %v after a paused the fleet for 3s", got[0].Sub(start))
		}
	})
}

func TestPacer_OwnRateCapsOnlyItsProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBudget(100)
		capped, free := newPacer(t, f, 20), newPacer(t, f, 0)
		got := departBoth(t, capped, 20, free, 80)
		// 20 departures at 20/s, made up when the fleet's slots came
		// later than the process's own time, span 0.95s less one interval.
		if lo, hi := minMax(got[0]); hi.Sub(lo) < 900*time.Millisecond {
			t.Errorf("the process capped at 20/s left 20 requests in %v", hi.Sub(lo))
		}
		first, last := minMax(append(got[0], got[1]...))
		if span := last.Sub(first); span > 1050*time.Millisecond {
			t.Errorf("100 departures at 100/s, one process capped at 20/s, took %v; want about 1s", span)
		}
	})
}

func minMax(ts []time.Time) (time.Time, time.Time) {
	lo, hi := ts[0], ts[0]
	for _, t := range ts {
		if t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	return lo, hi
}

func TestPacer_DropsSlotsTooLateToTake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBudget(100)
		p := newPacer(t, f, 0)
		depart(t, p, 1, 1) // reserves 20ms of slots, takes the first
		time.Sleep(time.Second)
		got := depart(t, p, 1, 1)
		if len(f.slots) != 4 {
			t.Fatalf("reserved %d slots, want 2 and 2 more after the second's time was long past", len(f.slots))
		}
		if want := f.slots[2].Add(-dbAhead); !got[0].Equal(want) {
			t.Errorf("after a second idle, left at %v, want the new slot %v", got[0], want)
		}
	})
}
