package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// runFleet imports on a PostgreSQL ledger: it loads the file's rows to
// send as queued chunks and, unless --detach, works them with its own pool
// beside any workers until every queued row of its target has ended,
// whichever process sent it. Its summary counts those rows as the ledger has them.
func (j *importJob) runFleet(ctx context.Context, e env, rec *summaryRecorder, pg postgresStore) error {
	start := time.Now()
	name := j.tgt.Name()
	ls := &loadingStore{postgresStore: pg, ceiling: j.f.rps}
	lcfg := j.cfg
	lcfg.Queue = true
	loader := importer.New(lcfg, nil, nil, ls, name)
	var (
		lsum    importer.Summary
		lerr    error
		loadEnd = make(chan struct{})
	)
	go func() {
		defer close(loadEnd)
		lsum, lerr = loader.Import(ctx, j.in)
	}()
	var wsum importer.Summary
	var werr error
	if j.f.detach || j.cfg.MarkExisting {
		<-loadEnd // --mark-existing sends nothing: no pool of its own
	} else {
		fp := &fleetProgress{ctx: ctx, l: pg.Ledger, ls: ls, loader: loader}
		prog := j.startProgress(e, fp)
		wsum, werr = j.workOwn(ctx, pg, ls, loadEnd, fp)
		<-loadEnd
		fp.stale() // the last state shown is the ledger's at the end
		prog.stop()
	}
	sum := lsum
	err := lerr
	if err == nil {
		err = werr
	}
	if err == nil && !j.f.detach {
		err = runStopped(ctx, pg.Ledger, ls.started())
	}
	if r := ls.started(); r != nil && !j.f.detach {
		sum = fleetSummary(ctx, pg.Ledger, r.ID, lsum, wsum, err)
		countElsewhere(ctx, pg.Ledger, name, loader.QueuedElsewhere(), &sum)
		sum.Elapsed = time.Since(start)
	}
	rec.sum = &sum
	if j.input != nil {
		rec.inputChanged = j.input.Changed()
	}
	if r := ls.started(); r != nil {
		rec.run = fleetRun(ctx, pg.Ledger, r.ID)
	}
	if j.f.detach && err == nil && ctx.Err() == nil && ls.started() != nil {
		printDetached(e.stdout, sum, ls.started().ID, name, ledgerHint(j.f.ledger, j.f.ledgerFromEnv))
		printInputChanged(e.stdout, rec.inputChanged)
		return nil
	}
	if !noSummary(err) {
		printSummary(e.stdout, sum, j.f.rps, j.tgt, ledgerHint(j.f.ledger, j.f.ledgerFromEnv), err)
		printInputChanged(e.stdout, rec.inputChanged)
		printReasons(e.stdout, rec.run.Reasons)
	}
	return importExit(ctx, sum, err)
}

// workOwn works chunks beside any workers until the loader has ended and
// no chunk of the target is open: its import's, and those of earlier
// imports, which come first (claims go in the order rows were queued) and
// may hold rows this import found queued already.
func (j *importJob) workOwn(ctx context.Context, pg postgresStore, ls *loadingStore, loadEnd <-chan struct{}, fp *fleetProgress) (importer.Summary, error) {
	name := j.tgt.Name()
	pacer, _, err := fleetPacer(ctx, pg.Ledger, name, 0) // the budget that --rps set
	if err != nil {
		return importer.Summary{}, err
	}
	wcfg := j.cfg
	wcfg.Queue = false
	im := importer.New(wcfg, j.client, pacer, pg, name)
	j.mx.watch(im, -1) // --metrics-addr: this process's own sending
	fp.own.Store(im)
	w, err := pg.StartWorker(ctx, name, leaseOptions(j.f.lease, workerStats(im)))
	if err != nil {
		return importer.Summary{}, err
	}
	done := func(ctx context.Context) (bool, error) {
		select {
		case <-loadEnd:
		default:
			return false, nil
		}
		if ls.started() == nil {
			return true, nil // nothing loaded
		}
		return w.Idle(ctx, 0)
	}
	return im.Work(ctx, postgresWorker{w}, importer.WorkConfig{Done: done, Poll: pollEvery(j.f.lease)})
}

// runStopped returns importer.ErrTooManyErrors, wrapped with the reason
// the ledger holds, when the fleet stopped run r for its --max-errors;
// nil when it did not, or r is nil (nothing was loaded).
func runStopped(ctx context.Context, l *postgres.Ledger, r *postgres.Run) error {
	if r == nil {
		return nil
	}
	lim, err := l.RunLimit(context.WithoutCancel(ctx), r.ID)
	if err != nil {
		return err
	}
	if lim.Stopped == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", importer.ErrTooManyErrors, lim.Stopped)
}

// pollEvery is how often a process with nothing to claim asks again: often
// enough that a dead worker's chunk is taken soon after its lease ends.
func pollEvery(lease time.Duration) time.Duration {
	return min(time.Second, max(50*time.Millisecond, lease/20))
}

// leaseOptions are the worker options of a process whose --lease is lease:
// the longest a dead process's rows wait before another process takes
// them. Each claim and heartbeat holds a chunk for lease less the other
// processes' poll, so that one of them, looking for a chunk whose lease ran
// out at least each poll, takes it within lease of the holder's death.
func leaseOptions(lease time.Duration, stats func() (int64, float64)) postgres.WorkerOptions {
	return postgres.WorkerOptions{Lease: lease - pollEvery(lease), Stats: stats}
}

// workerStats reports, for the workers table, the requests im has sent and
// its rate since the last call.
func workerStats(im *importer.Importer) func() (int64, float64) {
	var mu sync.Mutex
	last, lastAt := int64(0), time.Now()
	return func() (int64, float64) {
		mu.Lock()
		defer mu.Unlock()
		n, now := im.Progress().Requests, time.Now()
		rate := float64(n-last) / max(now.Sub(lastAt).Seconds(), 1e-3)
		last, lastAt = n, now
		return n, rate
	}
}

// fleetSummary is the import's summary: the loader's counts of the rows it
// did not queue, the ledger's of those it queued (by whatever process),
// and this process's requests.
func fleetSummary(ctx context.Context, l *postgres.Ledger, runID int64, lsum, wsum importer.Summary, err error) importer.Summary {
	sum := lsum
	sum.Requests, sum.Throttled = wsum.Requests, wsum.Throttled
	sum.AssignsIDs = sum.AssignsIDs || wsum.AssignsIDs
	sum.Held += wsum.Held
	sum.HeldUntilKnown += wsum.HeldUntilKnown
	sum.KeepsIDs = sum.KeepsIDs || wsum.KeepsIDs
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ended, left, cerr := l.FleetCounts(cctx, runID)
	if cerr != nil {
		sum.Pending += sum.ToSend // unknown: none counted done
		return sum
	}
	sum = addFleetCounts(sum, ended, left)
	switch {
	case err != nil:
		sum.Outcome = "aborted"
	case ctx.Err() != nil:
		sum.Outcome = "interrupted"
	case lsum.Outcome == "loaded":
		sum.Outcome = "completed"
	}
	return sum
}

// addFleetCounts adds to sum, a loader's, the rows it queued as the
// ledger's FleetCounts has them: ended, by status, and left, still owed work.
func addFleetCounts(sum importer.Summary, ended map[row.Status]int, left int) importer.Summary {
	sum.Created += int64(ended[row.Created])
	sum.Exists += int64(ended[row.Exists])
	sum.Rejected += int64(ended[row.Rejected])
	sum.Failed += int64(ended[row.Failed])
	sum.InDoubt += int64(ended[row.InDoubt] + ended[row.InFlight])
	sum.Pending += int64(left)
	return sum
}

// countElsewhere counts the rows of the file that another import had
// queued (counted Pending by the loader) as the ledger has them now: this
// import's pool has worked every chunk of the target, theirs included. A
// row still queued or in flight stays Pending; when the ledger cannot say,
// all do.
func countElsewhere(ctx context.Context, l *postgres.Ledger, target string, keys []string, sum *importer.Summary) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ended := map[row.Status]int64{}
	for len(keys) > 0 {
		n := min(len(keys), 5000)
		got, err := l.Lookup(cctx, target, keys[:n])
		if err != nil {
			return
		}
		for _, p := range got {
			ended[p.Status]++
		}
		keys = keys[n:]
	}
	for st, c := range map[row.Status]*int64{row.Created: &sum.Created, row.Exists: &sum.Exists,
		row.Rejected: &sum.Rejected, row.Failed: &sum.Failed, row.InDoubt: &sum.InDoubt} {
		*c += ended[st]
		sum.Pending -= ended[st]
	}
}

// fleetProgress is what a fleet import's progress display shows: the
// loader's counts of the rows it read, the ledger's of the rows it queued,
// whichever process sent them, and the requests and rate limit of this
// process's pool. It reads the ledger at most every fleetCountsEvery (a
// count reads every row of the run) and keeps the last counts read when a
// read fails. Safe for concurrent use.
type fleetProgress struct {
	ctx    context.Context
	l      *postgres.Ledger
	ls     *loadingStore
	loader *importer.Importer
	own    atomic.Pointer[importer.Importer] // the pool beside the workers, once it runs

	mu    sync.Mutex
	ended map[row.Status]int // nil until read
	left  int
	at    time.Time // when ended and left were read
}

// fleetCountsEvery is the shortest time between two reads of the ledger's
// counts by a fleet import's progress display.
const fleetCountsEvery = time.Second

// Progress is the import's summary so far.
func (fp *fleetProgress) Progress() importer.Summary {
	sum := fp.loader.Progress()
	if own := fp.own.Load(); own != nil {
		o := own.Progress()
		sum.Requests, sum.Throttled, sum.Waiting = o.Requests, o.Throttled, o.Waiting
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if r := fp.ls.started(); r != nil && time.Since(fp.at) >= fleetCountsEvery {
		if ended, left, err := fp.l.FleetCounts(fp.ctx, r.ID); err == nil {
			fp.ended, fp.left = ended, left
		}
		fp.at = time.Now()
	}
	if fp.ended == nil {
		return sum
	}
	return addFleetCounts(sum, fp.ended, fp.left)
}

// Limiter is the limiter of this process's pool; nil before it runs.
func (fp *fleetProgress) Limiter() *ratelimit.Limiter {
	if own := fp.own.Load(); own != nil {
		return own.Limiter()
	}
	return nil
}

// stale makes the next Progress read the ledger.
func (fp *fleetProgress) stale() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	fp.at = time.Time{}
}

// printDetached says what a detached import loaded and how to follow it.
func printDetached(w io.Writer, s importer.Summary, runID int64, target, ledgerPath string) {
	ledgerFlag := ""
	if ledgerPath != defaultLedger {
		ledgerFlag = " --ledger " + ledgerPath
	}
	fmt.Fprintf(w, "%s: import %d loaded in %s: %d rows queued for workers", target, runID, s.Elapsed.Round(time.Millisecond), s.ToSend)
	if n := s.Invalid + s.Duplicate; n > 0 {
		fmt.Fprintf(w, ", %d invalid or duplicate", n)
	}
	fmt.Fprintf(w, ", %d skipped (done before), %d rows read\n", s.Skipped, s.Read)
	fmt.Fprintf(w, "next: start workers (bulkcreate worker%s, with this target's environment); watch: bulkcreate report%s\n", ledgerFlag, ledgerFlag)
}
