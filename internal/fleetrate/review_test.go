package fleetrate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
)

// TestReview_AYearLongPauseInTheBudgetEndsTheWait: the budget row's
// paused_until is a year ahead (written by a process of another version
// or configuration, whose law's MaxPause is not this one's, or by hand).
// This process's law caps its own pauses at MaxPause (1 min) and the stop
// rules end a run told to wait over --max-retry-after (10 min), but the
// shared pause is adopted and reserved after as it is: Wait sleeps for a
// year. No request leaves, so no stop rule ever fires; the worker's
// heartbeat keeps the leases on its chunks, so no other worker takes its
// rows either, and worker --exit-when-idle never exits.
func TestReview_AYearLongPauseInTheBudgetEndsTheWait(t *testing.T) {
	t.Parallel()
	f := newFakeBudget(0)
	f.b.Law = postgres.Law{Rate: 100, Margin: 0.9, Since: f.now().Add(-time.Minute), PausedUntil: f.now().Add(365 * 24 * time.Hour)}
	f.b.Version = 1
	start := time.Now()
	p, err := New(Config{Budget: f, Target: "t"}, f.read(), start, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	err = p.Wait(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait() under a budget paused for a year = %v after %v; want an error that ends the run (a pause past any --max-retry-after), not a year's sleep",
			err, time.Since(start).Round(time.Millisecond))
	}
}
