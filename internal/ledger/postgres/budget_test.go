package postgres

import (
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// These tests assert on the schedule the database reserved (the slots
// Reserve returned, on the database's clock), never on when anything ran:
// a loaded machine changes when reservations happen, not which slots they
// get. Each reservation takes many slots, so that the schedule stays ahead
// of the database's clock however slow the statements are, and the slots
// of all callers must then be contiguous.

const budgetRate = 200 // requests per second

var budgetInterval = time.Second / budgetRate

// openBudgets opens n ledgers on one schema, as n processes would, and
// target's budget on each.
func openBudgets(t *testing.T, n int) []*Ledger {
	t.Helper()
	url := testURL(t)
	schema := newSchema(t, url)
	ls := make([]*Ledger, n)
	for i := range ls {
		ls[i] = openLedger(t, url, schema)
		if _, err := ls[i].OpenBudget(t.Context(), targetA); err != nil {
			t.Fatalf("OpenBudget() = %v", err)
		}
	}
	return ls
}

// reserve reserves n slots at rate, reading the budget again when it
// moved, and returns the reservation.
func reserve(t *testing.T, l *Ledger, n int, rate float64) Reservation {
	t.Helper()
	var version int64 = -1
	for range 10 {
		r, err := l.Reserve(t.Context(), targetA, n, rate, version)
		if err != nil {
			t.Fatalf("Reserve(%d, %v) = %v", n, rate, err)
		}
		if r.Reserved {
			return r
		}
		version = r.Version
	}
	t.Fatalf("Reserve(%d, %v) never reserved", n, rate)
	return Reservation{}
}

// slots returns every slot of rs, in order.
func slots(rs ...Reservation) []time.Time {
	var out []time.Time
	for _, r := range rs {
		for i := range r.N {
			out = append(out, r.Slot(i))
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// wantContiguous checks that ts are spaced exactly iv apart: disjoint,
// and no slot left out between them.
func wantContiguous(t *testing.T, ts []time.Time, iv time.Duration) {
	t.Helper()
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d != iv {
			t.Fatalf("slot %d is %v after slot %d, want %v (slots %v, %v)", i, d, i-1, iv, ts[i-1], ts[i])
		}
	}
}

func TestBudget_ConcurrentCallersGetContiguousDisjointSlots(t *testing.T) {
	t.Parallel()
	const callers, reservations, n = 4, 10, 25
	ls := openBudgets(t, callers)
	got := make([][]Reservation, callers)
	var wg sync.WaitGroup
	for i, l := range ls {
		wg.Go(func() {
			for range reservations {
				r, err := l.Reserve(t.Context(), targetA, n, budgetRate, 0)
				if err != nil || !r.Reserved {
					t.Errorf("Reserve() = %+v, %v", r, err)
					return
				}
				got[i] = append(got[i], r)
			}
		})
	}
	wg.Wait()
	all := slots(slices.Concat(got...)...)
	if len(all) != callers*reservations*n {
		t.Fatalf("reserved %d slots, want %d", len(all), callers*reservations*n)
	}
	wantContiguous(t, all, budgetInterval)
	if span, want := all[len(all)-1].Sub(all[0]), time.Duration(len(all)-1)*budgetInterval; span != want {
		t.Errorf("%d slots span %v, want %v", len(all), span, want)
	}
	r := reserve(t, ls[0], 0, budgetRate)
	if r.Budget.Total != int64(len(all)) {
		t.Errorf("Budget.Total = %d, want %d", r.Budget.Total, len(all))
	}
}

func TestBudget_PublishedDecreaseChangesTheNextReservationOfEveryCaller(t *testing.T) {
	t.Parallel()
	ls := openBudgets(t, 2)
	a, b := ls[0], ls[1]
	first := reserve(t, b, 20, budgetRate) // b's view of the budget: version 0
	read := reserve(t, a, 0, budgetRate)
	law := Law{Rate: 50, Limit: 55, Margin: 0.91, Since: read.Now}
	pub, err := a.Publish(t.Context(), targetA, law, read.Version)
	if err != nil || pub.Law != law || pub.Version == first.Version {
		t.Fatalf("Publish(%+v) = %+v, %v; want the law written and the version moved", law, pub, err)
	}
	stale, err := b.Reserve(t.Context(), targetA, 20, budgetRate, first.Version)
	if err != nil {
		t.Fatal(err)
	}
	if stale.Reserved || stale.N != 0 || stale.Law != law {
		t.Fatalf("Reserve at the old rate after a decrease = %+v, want nothing reserved and the law %+v", stale, law)
	}
	next, err := b.Reserve(t.Context(), targetA, 20, stale.Law.Rate, stale.Version)
	if err != nil || !next.Reserved {
		t.Fatalf("Reserve at the new rate = %+v, %v", next, err)
	}
	// The refused reservation left the schedule where it was.
	wantContiguous(t, slots(first, next)[19:21], budgetInterval)
	wantContiguous(t, slots(next), time.Second/50)
}

func TestBudget_PublishConverges(t *testing.T) {
	t.Parallel()
	ls := openBudgets(t, 2)
	a, b := ls[0], ls[1]
	read := reserve(t, a, 0, budgetRate)
	t0 := read.Now
	newer := Law{Rate: 90, Limit: 100, Margin: 0.9, Since: t0.Add(time.Second)}
	older := Law{Rate: 150, Limit: 160, Margin: 0.95, Since: t0}
	if _, err := a.Publish(t.Context(), targetA, newer, read.Version); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		law  Law
		want Law
	}{
		{"AnOlderDecreaseLoses", older, newer},
		{"AMarginChangeOnAnOldReadLoses", Law{Rate: 80, Limit: 100, Margin: 0.8, Since: newer.Since}, newer},
		{"ANewerDecreaseWins", Law{Rate: 70, Limit: 80, Margin: 0.9, Since: t0.Add(2 * time.Second)}, Law{Rate: 70, Limit: 80, Margin: 0.9, Since: t0.Add(2 * time.Second)}},
	}
	for _, tt := range tests {
		got, err := b.Publish(t.Context(), targetA, tt.law, read.Version) // b read before a's publish
		if err != nil || got.Law != tt.want {
			t.Errorf("%s: Publish(%+v) = %+v, %v; want %+v", tt.name, tt.law, got.Law, err, tt.want)
		}
	}
}

func TestBudget_DeadCallerLeavesNoGap(t *testing.T) {
	t.Parallel()
	ls := openBudgets(t, 2)
	a, b := ls[0], ls[1]
	var rs []Reservation
	for range 3 {
		rs = append(rs, reserve(t, a, 20, budgetRate), reserve(t, b, 20, budgetRate))
	}
	// a stops reserving: b's next slots follow on at the full rate, with no
	// share of a's kept for it.
	for range 3 {
		rs = append(rs, reserve(t, b, 20, budgetRate))
	}
	wantContiguous(t, slots(rs...), budgetInterval)
}

func TestBudget_PauseHoldsEveryCaller(t *testing.T) {
	t.Parallel()
	ls := openBudgets(t, 2)
	a, b := ls[0], ls[1]
	read := reserve(t, a, 0, budgetRate)
	until := read.Now.Add(10 * time.Second)
	// A pause before any 429, with no ceiling: the rate is still +Inf.
	paused := Law{Rate: math.Inf(1), Margin: 0.97, PausedUntil: until}
	if got, err := a.Publish(t.Context(), targetA, paused, read.Version); err != nil || got.Law != paused {
		t.Fatalf("Publish(%+v) = %+v, %v", paused, got.Law, err)
	}
	// A shorter pause published later does not end it.
	pub, err := b.Publish(t.Context(), targetA, Law{PausedUntil: read.Now.Add(time.Second)}, read.Version)
	if err != nil || !pub.Law.PausedUntil.Equal(until) {
		t.Fatalf("Publish(a shorter pause) = %+v, %v; want the pause until %v", pub.Law, err, until)
	}
	r := reserve(t, b, 5, budgetRate)
	if !r.First.Equal(until) {
		t.Errorf("the first slot after a pause until %v is %v", until, r.First)
	}
}

func TestBudget_Ceiling(t *testing.T) {
	t.Parallel()
	ls := openBudgets(t, 1)
	l := ls[0]
	before := reserve(t, l, 0, 0)
	if before.Ceiling != 0 {
		t.Fatalf("a new budget's Ceiling = %v, want 0 (none)", before.Ceiling)
	}
	if err := l.SetCeiling(t.Context(), targetA, 150); err != nil {
		t.Fatal(err)
	}
	after := reserve(t, l, 0, 0)
	if after.Ceiling != 150 || after.Version == before.Version {
		t.Errorf("after SetCeiling(150): Ceiling %v, version %d (was %d); want 150 and a new version", after.Ceiling, after.Version, before.Version)
	}
	if err := l.SetCeiling(t.Context(), targetA, -1); err == nil {
		t.Errorf("SetCeiling(-1) = nil, want an error")
	}
}

func TestBudget_UnknownTarget(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	if _, err := l.Reserve(t.Context(), targetB, 1, budgetRate, 0); !errors.Is(err, ErrNoBudget) {
		t.Errorf("Reserve(a target without OpenBudget) = %v, want ErrNoBudget", err)
	}
}

// TestBudget_ATinyRateSpacesItsSlots: import --rps accepts any rate above
// 0 and SetCeiling stores it; fleetrate reserves at the ceiling. A
// time.Duration of 1/rate overflows for a rate under about 1.1e-10/s (the
// interval would come out negative, the slots all at once, as with no
// limit): Reserve spaces such slots maxInterval apart.
func TestBudget_ATinyRateSpacesItsSlots(t *testing.T) {
	t.Parallel()
	l := openBudgets(t, 1)[0]
	const rate = 1e-10
	if err := l.SetCeiling(t.Context(), targetA, rate); err != nil {
		t.Fatalf("SetCeiling(%v) = %v", rate, err)
	}
	r := reserve(t, l, 3, rate)
	if r.Interval <= 0 || !r.Slot(1).After(r.Slot(0)) {
		t.Errorf("Reserve(3 slots at %v/s) = interval %v, slots %v, %v; want them spaced 1/rate apart (or the rate refused)",
			rate, r.Interval, r.Slot(0), r.Slot(1))
	}
}
