package fleetrate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
)

// TestPacer_APauseLongerThanAnyLawsEndsTheWait: the budget row's
// paused_until is a year ahead (written by a process of another version
// or configuration, whose law's MaxPause is not this one's, or by hand).
// Slept out, no request would leave, so no stop rule would fire, and the
// worker's heartbeat would keep its chunks from the others for a year:
// Wait returns an error instead, which ends the run.
func TestPacer_APauseLongerThanAnyLawsEndsTheWait(t *testing.T) {
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
