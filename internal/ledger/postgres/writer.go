package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// writer is the ledger's one writer. Callers hand it writes; it commits as
// many as are waiting (up to maxBatch) in one transaction, and sends that
// transaction's statements in one round trip: consecutive writes of one
// kind (marks, outcomes, line issues) become one statement over arrays
// (unnest), so a thousand outcomes cost one statement and one commit.
// After a failed commit every later write fails with the same error: a
// ledger that cannot write must stop the import, not drop outcomes. A
// commit refused for a worker's lost lease (ErrLeaseLost) is the worker's
// alone: the batch is committed again in parts (commitApart), only the
// writes for the lost chunk are refused, the writer goes on, and
// leaseLost says so to the workers, which stop (Worker.Holds).
//
// It owns one connection for its life.
type writer struct {
	conn     *pgxpool.Conn
	ops      chan writeOp
	maxBatch int
	timeout  time.Duration // the longest a commit may take (Options.Timeout)
	done     chan struct{} // closed when the loop has ended

	mu       sync.Mutex
	err      error
	leaseErr error // the first commit refused with ErrLeaseLost

	sendMu  sync.RWMutex // held to send on ops; close takes it to close ops
	closing bool
}

type opKind int

const (
	opFlush opKind = iota // nothing to write: a barrier to wait on
	opMark
	opRecord
	opRelease
	opLineIssue
	opClearLineIssue
	opSetMessage
	opReplace
	opFinish
	opAssignsIDs
	opKeepsIDs
	opQueue    // fleet.go: sends queued in a new chunk of the run
	opLoaded   // fleet.go: the run's rows are all queued
	opChunkEnd // fleet.go: a worker is done with a chunk, or gives it back
)

// writeOp is one write, as its caller described it; the writer turns it
// into SQL when it commits.
type writeOp struct {
	kind     opKind
	targetID int64
	runID    int64
	// chunk and fence, when chunk > 0: a worker's write for a row of that
	// chunk, which it claimed with that fence. The commit is refused whole
	// if the chunk's fence has changed (fence_chunks); such writes are not
	// fenced by their run, which a worker does not hold.
	chunk, fence int64
	finished     bool           // opChunkEnd: every row of the chunk is taken to an outcome
	copy         bool           // opQueue: rows new to the ledger, copied in (copy.go)
	sends        []ledger.Send  // opMark
	outcome      ledger.Outcome // opRecord
	key          string         // opRelease, opSetMessage, opReplace
	prior        *ledger.Prior  // opRelease; nil: the row was new
	issue        ledger.LineIssue
	message      string // opSetMessage
	end          ledger.RunEnd
	endCounts    []byte // opFinish: end.Counts as JSON
	// done, when not nil, gets the result once the write is committed,
	// which in PostgreSQL is on disk. Nil for fire-and-forget.
	done chan error
}

func newWriter(ctx context.Context, pool *pgxpool.Pool, maxBatch int, timeout time.Duration) (*writer, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	w := &writer{conn: conn, ops: make(chan writeOp, maxBatch), maxBatch: maxBatch, timeout: timeout, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.loop()
	}()
	return w, nil
}

var errClosed = errors.New("ledger: closed")

// submit queues op; with wait it blocks until op's batch is committed.
func (w *writer) submit(ctx context.Context, op writeOp, wait bool) error {
	if wait {
		op.done = make(chan error, 1)
	}
	if err := w.send(ctx, op); err != nil {
		return err
	}
	if !wait {
		return nil
	}
	// Once queued, the write happens whatever ctx says; wait for it so the
	// caller never believes a committed write failed.
	return <-op.done
}

func (w *writer) send(ctx context.Context, op writeOp) error {
	if err := w.failed(); err != nil {
		return err
	}
	w.sendMu.RLock()
	defer w.sendMu.RUnlock()
	if w.closing {
		return errClosed
	}
	select {
	case w.ops <- op:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// flush waits until everything queued before it is committed.
func (w *writer) flush(ctx context.Context) error {
	return w.submit(ctx, writeOp{kind: opFlush}, true)
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// linger is how long the writer waits for more writes when none of those
// it holds is waited for: outcomes arrive one by one as answers come in,
// and a commit of dozens costs little more than a commit of one. A crash
// loses at most this long's outcomes, whose rows stay in flight: in doubt
// for the next claim, not lost.
const linger = 10 * time.Millisecond

func (w *writer) loop() {
	batch := make([]writeOp, 0, w.maxBatch)
	timer := time.NewTimer(linger)
	timer.Stop()
	for op := range w.ops {
		batch = append(batch[:0], op)
		waited := op.done != nil
		lingering := false
	fill:
		for len(batch) < w.maxBatch {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
				waited = waited || op.done != nil
				continue
			default:
			}
			if waited {
				break
			}
			if !lingering {
				timer.Reset(linger)
				lingering = true
			}
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
				waited = op.done != nil
			case <-timer.C:
				lingering = false
				break fill
			}
		}
		if lingering {
			timer.Stop()
		}
		var errs map[int64]error // by chunk, after a commit refused for a lost lease
		err := w.failed()
		if err == nil {
			err = w.commit(batch)
			if errors.Is(err, ErrLeaseLost) {
				errs, err = w.commitApart(batch)
			}
			if err != nil {
				w.fail(err)
			}
		}
		for _, op := range batch {
			if op.done == nil {
				continue
			}
			if e, ok := errs[op.chunk]; ok {
				op.done <- e
			} else {
				op.done <- err
			}
		}
		clear(batch) // let the sends go
	}
}

// commitApart commits batch again, after a commit of it was refused for a
// lost lease: its writes for no chunk (0) together, and those for each
// chunk apart, so that only the writes for a chunk claimed by another are
// refused. It returns each group's error, and the first that is not
// ErrLeaseLost (the groups after it are not committed, and get it).
func (w *writer) commitApart(batch []writeOp) (map[int64]error, error) {
	var order []int64
	groups := map[int64][]writeOp{}
	for _, op := range batch {
		if _, ok := groups[op.chunk]; !ok {
			order = append(order, op.chunk)
		}
		groups[op.chunk] = append(groups[op.chunk], op)
	}
	errs := make(map[int64]error, len(order))
	var failed error
	for _, chunk := range order {
		if failed != nil {
			errs[chunk] = failed
			continue
		}
		err := w.commit(groups[chunk])
		if errors.Is(err, ErrLeaseLost) {
			w.mu.Lock()
			if w.leaseErr == nil {
				w.leaseErr = err
			}
			w.mu.Unlock()
		} else if err != nil {
			failed = err
		}
		errs[chunk] = err
	}
	return errs, failed
}

// leaseLost returns the error of the first commit refused for a worker's
// lost lease, or nil.
func (w *writer) leaseLost() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leaseErr
}

// commit applies batch in one transaction, in one round trip: pgx sends a
// batch as one pipeline ending in one Sync, which PostgreSQL runs as one
// implicit transaction, committed at the Sync or rolled back whole at the
// first error (no BEGIN and COMMIT, each a round trip of its own).
func (w *writer) commit(batch []writeOp) error {
	// The batch is committed even when the caller that queued it gave up:
	// those writes describe requests that may already be out. A commit
	// that takes longer than the timeout fails.
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	if allCopied(batch) {
		return w.commitCopy(ctx, batch)
	}
	var b pgx.Batch
	if runs := runsOf(batch); len(runs) > 0 {
		b.Queue(`SELECT fence_runs($1)`, runs)
	}
	if ids, fences := chunksOf(batch); len(ids) > 0 {
		b.Queue(`SELECT fence_chunks($1, $2)`, ids, fences)
	}
	if runs := endingRuns(batch); len(runs) > 0 {
		// Two commits that end the last chunks of a run at once: the
		// later waits here for the earlier, and its completeRunSQL sees
		// the earlier's chunk done. In id order, so that two never wait
		// on each other.
		b.Queue(`SELECT id FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE`, runs)
	}
	if onlyQueues(batch) {
		// Queued rows are not yet a promise to anyone: a load lost to a
		// crash of the database is loaded again, and a worker's mark of a
		// queued row, committed synchronously, makes the queue durable
		// with it (the log is flushed in order). So a load waits for no
		// disk flush; its Loaded does.
		b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	}
	fences := b.Len()
	buildBatch(&b, batch)
	if b.Len() == fences {
		return nil // nothing to write (a flush)
	}
	err := w.conn.SendBatch(ctx, &b).Close()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("ledger: write: no commit within %v (the database or the way to it hung): %w", w.timeout, err)
	}
	return commitError(err)
}

// commitError is the error of a commit that failed with err, or nil.
func commitError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "BC001" {
		return fmt.Errorf("%w: another import has taken the target and ended this run", ErrLockLost)
	}
	if errors.As(err, &pgErr) && pgErr.Code == "BC002" {
		return fmt.Errorf("%w: another worker has claimed a chunk of this write", ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("ledger: write: %w", err)
	}
	return nil
}

// onlyQueues reports whether every write of batch queues rows.
func onlyQueues(batch []writeOp) bool {
	for _, op := range batch {
		if op.kind != opQueue {
			return false
		}
	}
	return len(batch) > 0
}

// runsOf lists the runs batch writes for, each once: the commit is
// refused whole if one of them is no longer running (fence_runs).
func runsOf(batch []writeOp) []int64 {
	var runs []int64
	for _, op := range batch {
		if op.runID > 0 && op.chunk == 0 && !slices.Contains(runs, op.runID) {
			runs = append(runs, op.runID)
		}
	}
	return runs
}

// endingRuns lists the runs of the chunks batch ends, done or given back
// (a stopped run ends once none of its chunks is held), each once.
func endingRuns(batch []writeOp) []int64 {
	var runs []int64
	for _, op := range batch {
		if op.kind == opChunkEnd && !slices.Contains(runs, op.runID) {
			runs = append(runs, op.runID)
		}
	}
	return runs
}

// chunksOf lists the chunks batch writes for, each once, with the fence
// each was claimed with.
func chunksOf(batch []writeOp) (ids, fences []int64) {
	for _, op := range batch {
		if op.chunk > 0 && !slices.Contains(ids, op.chunk) {
			ids = append(ids, op.chunk)
			fences = append(fences, op.fence)
		}
	}
	return ids, fences
}

// close commits what is queued, stops the writer and gives its connection
// back. It returns the writer's first error.
func (w *writer) close() error {
	w.sendMu.Lock()
	first := !w.closing
	if first {
		w.closing = true
		close(w.ops)
	}
	w.sendMu.Unlock()
	<-w.done
	if first {
		w.conn.Release()
	}
	return w.failed()
}
