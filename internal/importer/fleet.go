package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// Fleet mode. An import with Config.Queue plans its file as any import
// does, by the same rules, but queues the rows to send in the store, in
// chunks, instead of sending them (Queuer). Work takes chunks of queued
// rows from a Worker and sends their rows by the same path as an import
// (send.go), with the chunk's fenced writes as its Run: any number of
// processes on any number of machines work one target's imports together.

// Queuer is the Run of a store that can queue rows for workers.
type Queuer interface {
	// Queue writes sends as rows queued in one new chunk; it returns once
	// lookups see them.
	Queue(ctx context.Context, sends []ledger.Send) error
	// Loaded records that the run has queued all it will, in place of
	// Finish: the run ends when workers have worked its last chunk.
	Loaded(ctx context.Context, end ledger.RunEnd) error
}

// aheadQueuer is a Queuer that can tell a load into an empty target, and
// queue without waiting for each commit.
type aheadQueuer interface {
	Queuer
	// TargetEmpty reports whether the target holds no row; no other
	// process adds one while the run queues.
	TargetEmpty(ctx context.Context) (bool, error)
	// QueueAhead queues as Queue does but returns before the commit;
	// lookups see the rows after QueueSync.
	QueueAhead(ctx context.Context, sends []ledger.Send) error
	QueueSync(ctx context.Context) error
}

// Worker is a store's side of fleet mode: a Run whose writes are fenced by
// the chunk that holds their row, and the claims of chunks.
type Worker interface {
	Run
	// Claim takes a chunk free to work; ok is false when none is now.
	Claim(ctx context.Context) (chunk ledger.Chunk, ok bool, err error)
	// ClaimExpired takes a chunk whose holder's lease ran out. When none
	// has, wait is how long until the first lease another holds runs
	// out (0: none is held).
	ClaimExpired(ctx context.Context) (chunk ledger.Chunk, ok bool, wait time.Duration, err error)
	// ChunkEnd marks a chunk done (finished) or gives it back.
	ChunkEnd(ctx context.Context, chunk int64, finished bool) error
	// Holds returns an error once the worker may no longer hold a chunk
	// it claimed: it must send nothing more.
	Holds() error
}

// WorkConfig says when Work ends.
type WorkConfig struct {
	// Done, when set, is asked before each claim and whenever no chunk is
	// free: Work ends when it says true. Nil: Work ends with its context.
	Done func(ctx context.Context) (bool, error)
	// Poll is how long Work waits when no chunk is free, and the longest
	// it waits, while its pool is full, before it looks for a chunk whose
	// lease ran out. Default 500ms.
	Poll time.Duration
}

// stopReader is a Queuer that can tell whether the fleet stopped its run
// for its error limit (RunStopper.StopRun) while it loads.
type stopReader interface {
	// StopReason is why the run was stopped; "" while it was not.
	StopReason(ctx context.Context) (string, error)
}

// queue queues marks as one chunk (Config.Queue). A blind load queues
// ahead of the commit: its next batch is planned without lookups. Once
// the fleet has stopped the run for its error limit, it returns
// ErrTooManyErrors: the load stops, its rows not queued left as they were.
func (p *planner) queue(ctx context.Context, marks []ledger.Send) error {
	q, ok := p.im.run.(Queuer)
	if !ok {
		return errors.New("importer: this store cannot queue rows for workers")
	}
	if err := p.stopped(ctx); err != nil {
		return err
	}
	if aq, ok := q.(aheadQueuer); ok && p.blind {
		p.unsynced = true
		return aq.QueueAhead(context.WithoutCancel(ctx), marks)
	}
	return q.Queue(context.WithoutCancel(ctx), marks)
}

// stopped returns ErrTooManyErrors, wrapped with the reason, once the
// fleet has stopped the run being loaded for its error limit: workers may
// send its first chunks while it loads the rest. It asks the store only
// for a run with a limit, and at most every stopReadEvery.
func (p *planner) stopped(ctx context.Context) error {
	sr, ok := p.im.run.(stopReader)
	if !ok || (p.im.cfg.MaxErrors <= 0 && p.im.cfg.MaxErrorRate <= 0) {
		return nil
	}
	if now := time.Now(); now.Sub(p.stopReadAt) >= stopReadEvery {
		p.stopReadAt = now
		why, err := sr.StopReason(ctx)
		if err != nil || why == "" {
			return err
		}
		return fmt.Errorf("%w: %s", ErrTooManyErrors, why)
	}
	return nil
}

// startBlind decides whether a load can plan without lookups: its target
// held no row when it started, and the file has no customerId column.
// Then every row is keyed by its folded email, which the file's repeat
// set (seenSet) already holds once, and no row of the ledger can hold one
// of its keys or emails but the rows this load queued, each under its own
// key: a lookup could only find a repeat, which never reaches the plan.
// The exception is a row whose email has a legacy form (legacyEmail),
// which another row of the file might hold as its key; a batch with one
// is looked up, after the rows queued ahead are committed.
func (p *planner) startBlind(ctx context.Context, hasCustomerID bool) error {
	aq, ok := p.im.run.(aheadQueuer)
	if !ok || !p.im.cfg.Queue || hasCustomerID {
		return nil
	}
	empty, err := aq.TargetEmpty(ctx)
	p.blind = empty
	return err
}

// needsLookup reports whether rows must be looked up: always, but in a
// blind load for a batch with no email of a legacy form.
func (p *planner) needsLookup(rows []Row) bool {
	if !p.blind {
		return true
	}
	for _, r := range rows {
		if keyKind(r.Key) == "customerId" || legacyEmail(r) != "" {
			return true
		}
	}
	return false
}

// sync waits for the rows queued ahead to be committed, so that a lookup
// sees them.
func (p *planner) sync(ctx context.Context) error {
	if !p.unsynced {
		return nil
	}
	p.unsynced = false
	return p.im.run.(aheadQueuer).QueueSync(context.WithoutCancel(ctx))
}

// Work claims chunks from w and sends their rows until wc.Done says so,
// ctx is done, or a reason to stop everything comes (then its error: the
// store's, ErrUnauthorized, ErrTooManyErrors, or the worker's lost lease).
// A worker that may have lost its lease sends nothing more. When w is a
// RunStopper, each run's error limit applies to that run, across the
// fleet, and reaching it stops that run, not Work; otherwise
// Config.MaxErrors counts this process's rows and stops Work. The summary
// counts the rows this process took: Read is the rows claimed.
func (im *Importer) Work(ctx context.Context, w Worker, wc WorkConfig) (Summary, error) {
	start := time.Now()
	if wc.Poll <= 0 {
		wc.Poll = 500 * time.Millisecond
	}
	im.run = w
	if keeps, err := im.store.KeepsIDs(ctx, im.target); err == nil && keeps {
		im.ownIDs.Store(true) // else each row in doubt asks again (keepsIDsNow)
	}
	if rs, ok := w.(RunStopper); ok {
		im.fleet = newFleetLimits(rs)
	}
	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	im.pacer = leasePacer{Pacer: im.pacer, holds: w.Holds, stop: stop}
	g, gctx := errgroup.WithContext(stopCtx) // the pool's size is its places
	var chunks sync.WaitGroup
	q := &rowQueue{batch: im.cfg.MarkAhead}
	claimErr := im.claimLoop(gctx, g, &chunks, w, wc, q)
	if claimErr != nil {
		stop(claimErr)
	}
	// Rows marked in flight but not started are started now that the run
	// stops: each is put back unsent. Rows not marked end unsent.
	for _, job := range q.ready {
		im.takePlace()
		g.Go(im.inPlace(job))
	}
	for _, r := range q.unmarked {
		r.drop()
	}
	runErr := g.Wait()
	chunks.Wait()
	if runErr == nil {
		runErr = claimErr
	}
	if runErr == nil && context.Cause(stopCtx) != nil && ctx.Err() == nil {
		runErr = context.Cause(stopCtx) // the lease was lost
	}
	outcome := outcomeOf(ctx, runErr)
	sum := im.summary(start, outcome)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if ferr := w.Finish(fctx, ledger.RunEnd{Outcome: outcome, Counts: sum.Counts}); runErr == nil {
		runErr = ferr
	}
	return sum, runErr
}

// claimLoop claims a chunk whenever fewer rows than the pool holds wait
// for it (the next chunk's claim and mark are then made while the pool
// sends the last rows of this one), and starts
// the rows of the chunks it holds as the pool has room. While rows wait,
// it looks for a chunk whose holder's lease ran out, as soon as the first
// lease another worker holds runs out (or each wc.Poll), and claims it:
// its rows go ahead of those waiting. A dead worker's chunk is thus taken
// moments after its lease ends, however long this worker's own rows take.
func (im *Importer) claimLoop(ctx context.Context, g *errgroup.Group, chunks *sync.WaitGroup, w Worker, wc WorkConfig, q *rowQueue) error {
	var lookAt time.Time  // when to look for an expired chunk next
	var claimAt time.Time // when to claim again, while rows wait, after none was free
	for ctx.Err() == nil {
		if q.waiting() {
			if err := im.startSome(ctx, g, w, q); err != nil {
				return err
			}
		}
		if !q.waiting() || (q.left() < im.cfg.Concurrency && !time.Now().Before(claimAt)) {
			if wc.Done != nil && !q.waiting() {
				done, err := wc.Done(ctx)
				if err != nil || done {
					return err
				}
			}
			chunk, ok, err := w.Claim(ctx)
			if err != nil {
				return err
			}
			if ok {
				q.unmarked = append(q.unmarked, im.startChunk(ctx, chunks, w, chunk)...)
				continue
			}
			if !q.waiting() {
				if sleep(ctx, wc.Poll) != nil {
					return nil
				}
				continue
			}
			claimAt = time.Now().Add(wc.Poll)
		}
		if now := time.Now(); !now.Before(lookAt) {
			chunk, ok, wait, err := w.ClaimExpired(ctx)
			if err != nil {
				return err
			}
			if ok {
				q.unmarked = append(im.takeOver(ctx, chunks, w, chunk), q.unmarked...)
				continue
			}
			lookAt = now.Add(wc.Poll)
			if wait > 0 && wait < wc.Poll {
				lookAt = now.Add(wait + time.Millisecond)
			}
		}
		t := time.NewTimer(time.Until(lookAt))
		select {
		case <-im.freed:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	return nil
}

// takeOver claims every other chunk whose lease ran out, and returns the
// rows of chunk and of those, in that order, to mark and send.
func (im *Importer) takeOver(ctx context.Context, chunks *sync.WaitGroup, w Worker, chunk ledger.Chunk) []claimedRow {
	claimed := []ledger.Chunk{chunk}
	for {
		c, ok, _, err := w.ClaimExpired(ctx)
		if err != nil || !ok {
			break // a failed claim holds nothing: the next look finds it again
		}
		claimed = append(claimed, c)
	}
	var rows []claimedRow
	for _, c := range claimed {
		rows = append(rows, im.startChunk(ctx, chunks, w, c)...)
	}
	return rows
}

// startChunk returns the chunk's rows to mark and send on the pool. Once
// every row has ended, the chunk is done; if the run stopped meanwhile (a
// row may then have been put back, or never marked), or the chunk's import
// was stopped for its error limit, it is given back.
func (im *Importer) startChunk(ctx context.Context, chunks *sync.WaitGroup, w Worker, chunk ledger.Chunk) []claimedRow {
	// Another process may have found that the target assigns its ids.
	if assigns, err := im.store.AssignsIDs(ctx, im.target); err == nil && assigns {
		im.assignsIDs.Store(true)
	}
	run := chunk.RunID
	im.counts.read.Add(int64(len(chunk.Rows)))
	var left atomic.Int64
	left.Store(int64(len(chunk.Rows)))
	var stopped atomic.Bool
	chunks.Add(1)
	end := func() {
		defer chunks.Done()
		finished := !stopped.Load() && ctx.Err() == nil && !im.fleet.stopped(run)
		if err := w.ChunkEnd(context.WithoutCancel(ctx), chunk.ID, finished); err != nil {
			im.cfg.Logger.Warn("chunk not ended", "chunk", chunk.ID, "error", err)
		}
		if err := im.fleet.chunkEnded(context.WithoutCancel(ctx), run); err != nil {
			im.cfg.Logger.Warn("error limit not checked", "import", run, "error", err)
		}
	}
	if len(chunk.Rows) == 0 {
		end()
		return nil
	}
	rowEnded := func() {
		if left.Add(-1) == 0 {
			end()
		}
	}
	rows := make([]claimedRow, len(chunk.Rows))
	for i, q := range chunk.Rows {
		r := Row{Line: q.SourceLine, Email: q.Email, Type: ripio.CustomerType(q.Type), CustomerID: q.CustomerIDSent, Key: q.Key,
			file: q.SourceFile, run: run}
		prior := &chunk.Rows[i].Prior
		rows[i] = claimedRow{
			mark: im.markOf(r),
			run:  run,
			send: func() error {
				defer im.counts.inFlight.Add(-1)
				err := im.send(ctx, r, prior)
				if err != nil || ctx.Err() != nil {
					stopped.Store(true)
				}
				rowEnded()
				return err
			},
			drop: func() {
				stopped.Store(true)
				rowEnded()
			},
		}
	}
	return rows
}

// inPlace returns job, which gives its place in the pool back as it ends.
func (im *Importer) inPlace(job func() error) func() error {
	return func() error {
		defer im.leavePlace()
		return job()
	}
}

// leasePacer checks, before a request leaves and again after its wait,
// that the worker still holds its chunks; once it does not, it stops the
// run (with the cause) and lets no request leave.
type leasePacer struct {
	Pacer
	holds func() error
	stop  context.CancelCauseFunc
}

func (p leasePacer) Reserve(ctx context.Context) (func(context.Context) error, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	leave, err := p.Pacer.Reserve(ctx)
	if err != nil {
		return nil, err
	}
	return leave, p.check()
}

func (p leasePacer) check() error {
	if err := p.holds(); err != nil {
		p.stop(err)
		return err
	}
	return nil
}
