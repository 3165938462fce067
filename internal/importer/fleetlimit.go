package importer

import (
	"context"
	"sync"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// A fleet import's --max-errors applies to its run, whichever processes
// send its rows: each process that works a chunk of the run counts the
// run's errors in the store, and the first to find the limit reached stops
// the run there (StopRun). No process claims a stopped run's chunks; one
// working a chunk of it puts its rows back unsent before their next
// request and gives the chunk back, and goes on with other runs' chunks.

// RunStopper is a Worker's store when it can apply each run's error limit
// across the fleet. Work applies the limits of the runs it works when its
// Worker is one; without it, Config.MaxErrors counts this process's rows.
type RunStopper interface {
	// RunLimit reads the run's limit and whether it was stopped: cheap.
	RunLimit(ctx context.Context, run int64) (ledger.RunLimit, error)
	// RunErrors counts the run's rows ended rejected, failed or in doubt
	// (errs), and those and the rows created or existing (finished), by
	// every process, this one's recorded so far included: it reads every
	// row of the run.
	RunErrors(ctx context.Context, run int64) (errs, finished int64, err error)
	// StopRun records that the run reached its limit, for reason.
	StopRun(ctx context.Context, run int64, reason string) error
}

// How often a process asks the store about a run with a limit. A run's
// stop, cheap to read (one row by its key), is read again at most every
// stopReadEvery, before a request of the run leaves: a process learns
// within that time that another stopped the run. Counting the run's errors
// reads every row of it, so it is done only when this process's own error
// count for the run moves, and at a chunk's end if it moved since, at most
// every countEvery or ten times as long as the last count took: the count
// costs the database at most a tenth of its time per process, however big
// the run. Between counts, this process's own errors are added to the last
// count, so a --max-errors N is found reached without a count once they
// make it up; a share (N%) waits for the next count.
const (
	stopReadEvery = 250 * time.Millisecond
	countEvery    = 100 * time.Millisecond
)

// fleetLimits holds what a process knows of the limits of the runs whose
// chunks it works. Safe for concurrent use.
type fleetLimits struct {
	store RunStopper
	now   func() time.Time

	mu   sync.Mutex
	runs map[int64]*runGuard
}

// runGuard is what a process knows of one run's limit. mu guards its
// fields and is never held while the store is asked: a count of a big
// run does not hold up the rows of the run on their way out.
type runGuard struct {
	mu        sync.Mutex
	limit     ledger.RunLimit
	readAt    time.Time     // when limit.Stopped was last read, or is being read
	counted   int64         // the run's errors at the last count
	countedAt time.Time     // when; zero before the first
	took      time.Duration // how long the last count took
	since     int64         // errors this process recorded since then
	counting  sync.Mutex    // held while the run's errors are counted
}

func newFleetLimits(s RunStopper) *fleetLimits {
	return &fleetLimits{store: s, now: time.Now, runs: map[int64]*runGuard{}}
}

// guard returns run's guard, reading its limit on first use; nil for a
// run without a limit, or a nil f.
func (f *fleetLimits) guard(ctx context.Context, run int64) (*runGuard, error) {
	if f == nil || run == 0 {
		return nil, nil
	}
	f.mu.Lock()
	g, ok := f.runs[run]
	f.mu.Unlock()
	if ok {
		if g.limit.None() {
			return nil, nil
		}
		return g, nil
	}
	lim, err := f.store.RunLimit(ctx, run)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if g, ok = f.runs[run]; !ok {
		g = &runGuard{limit: lim, readAt: f.now()}
		f.runs[run] = g
	}
	if g.limit.None() {
		return nil, nil
	}
	return g, nil
}

// stopped reports whether run was stopped for its limit, as this process
// last read it, without asking the store.
func (f *fleetLimits) stopped(run int64) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	g := f.runs[run]
	f.mu.Unlock()
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.limit.Stopped != ""
}

// stoppedNow reports whether run was stopped for its limit, reading the
// store again when what this process knows is older than stopReadEvery.
func (f *fleetLimits) stoppedNow(ctx context.Context, run int64) (bool, error) {
	g, err := f.guard(ctx, run)
	if g == nil || err != nil {
		return false, err
	}
	g.mu.Lock()
	stopped, stale := g.limit.Stopped != "", f.now().Sub(g.readAt) >= stopReadEvery
	if stopped || !stale {
		g.mu.Unlock()
		return stopped, nil
	}
	g.readAt = f.now() // the others read what this one finds
	g.mu.Unlock()
	lim, err := f.store.RunLimit(ctx, run)
	if err != nil {
		return false, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if lim.Stopped != "" {
		g.limit.Stopped = lim.Stopped
	}
	return g.limit.Stopped != "", nil
}

// noteError takes a row of run that this process recorded rejected, failed
// or in doubt, and stops the run when that reaches its limit.
func (f *fleetLimits) noteError(ctx context.Context, run int64) error {
	g, err := f.guard(ctx, run)
	if g == nil || err != nil {
		return err
	}
	g.mu.Lock()
	g.since++
	g.mu.Unlock()
	return f.check(ctx, run, g)
}

// chunkEnded checks run's limit at the end of one of its chunks, when this
// process recorded errors of it since the last count.
func (f *fleetLimits) chunkEnded(ctx context.Context, run int64) error {
	g, err := f.guard(ctx, run)
	if g == nil || err != nil {
		return err
	}
	g.mu.Lock()
	since := g.since
	g.mu.Unlock()
	if since == 0 {
		return nil
	}
	return f.check(ctx, run, g)
}

// check stops run when its errors, as last counted plus this process's
// since, reach its limit, counting them again in the store when the last
// count is old enough. While another goroutine counts, it leaves the check
// to that count and the next error.
func (f *fleetLimits) check(ctx context.Context, run int64, g *runGuard) error {
	if !g.counting.TryLock() {
		return nil
	}
	defer g.counting.Unlock()
	g.mu.Lock()
	lim, since, known := g.limit, g.since, g.counted+g.since
	due := g.countedAt.IsZero() || f.now().Sub(g.countedAt) >= max(countEvery, 10*g.took)
	g.mu.Unlock()
	switch {
	case lim.Stopped != "":
		return nil
	case lim.MaxErrors > 0 && known >= int64(lim.MaxErrors):
		return f.stop(ctx, run, g, errorLimitReached(lim.MaxErrors, 0, known, 0))
	case !due:
		return nil
	}
	start := f.now()
	errs, finished, err := f.store.RunErrors(ctx, run)
	if err != nil {
		return err
	}
	g.mu.Lock()
	// This process's errors noted before the count are in it (RunErrors
	// counts once they are committed); those noted since may not be, and
	// stay added to it until the next count.
	g.counted, g.countedAt, g.took = errs, f.now(), f.now().Sub(start)
	g.since -= since
	g.mu.Unlock()
	if why := errorLimitReached(lim.MaxErrors, lim.MaxErrorRate, errs, finished); why != "" {
		return f.stop(ctx, run, g, why)
	}
	return nil
}

// stop records that run reached its limit, why.
func (f *fleetLimits) stop(ctx context.Context, run int64, g *runGuard, why string) error {
	if err := f.store.StopRun(context.WithoutCancel(ctx), run, why); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limit.Stopped = why
	return nil
}
