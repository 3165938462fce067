package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// ErrLeaseLost is the error of a worker that no longer surely holds a
// chunk it claimed: its heartbeat could not extend the lease before the
// lease ran out by the worker's own clock, or another worker has claimed
// the chunk since (its writes for the chunk are then refused). It must
// stop before its next request.
var ErrLeaseLost = errors.New("ledger: this worker's lease on a chunk ended; another worker may hold its rows")

// DefaultLease is WorkerOptions.Lease's default.
const DefaultLease = 15 * time.Second

// WorkerOptions configure StartWorker.
type WorkerOptions struct {
	// Lease is how long a claim, or its last heartbeat, holds a chunk on
	// the database's clock. The heartbeat extends every chunk held each
	// Lease/3. Default DefaultLease.
	Lease time.Duration
	// Stats, when set, tells the heartbeat what to record of the worker for
	// report: requests sent so far and the rate it sends at now.
	Stats func() (requests int64, rate float64)
}

// Worker claims chunks of the queued rows of every import on one target
// and writes for their rows, each write fenced by the chunk that holds its
// row. Construct with StartWorker; end with Finish. Safe for concurrent use.
type Worker struct {
	l        *Ledger
	ID       int64
	targetID int64
	opts     WorkerOptions

	mu   sync.Mutex
	held map[int64]*claim  // chunk id -> its claim
	keys map[string]*claim // row key -> the claim of the chunk that holds it
	lost error             // set once: the worker must stop

	stop     chan struct{}
	stopOnce sync.Once
	beatDone chan struct{}
}

// claim is a chunk held: the fence it was claimed with, the run that
// queued it, and when the lease surely ends by this process's monotonic
// clock (measured from before the statement that set it was sent).
type claim struct {
	chunk, fence, run int64
	deadline          time.Time
	ending            bool // ChunkEnd has queued its write: no longer extended
}

// StartWorker registers a worker on target and starts its heartbeat.
func (l *Ledger) StartWorker(ctx context.Context, target string, opts WorkerOptions) (*Worker, error) {
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	tid, _, err := l.targetID(ctx, target, true)
	if err != nil {
		return nil, fmt.Errorf("ledger: start worker: %w", err)
	}
	w := &Worker{l: l, targetID: tid, opts: opts, held: map[int64]*claim{}, keys: map[string]*claim{},
		stop: make(chan struct{}), beatDone: make(chan struct{})}
	host, _ := os.Hostname()
	if err := l.pool.QueryRow(ctx, `INSERT INTO workers (target_id, host, pid, lease_seconds) VALUES ($1, $2, $3, $4) RETURNING id`,
		tid, host, os.Getpid(), opts.Lease.Seconds()).Scan(&w.ID); err != nil {
		return nil, fmt.Errorf("ledger: start worker: %w", err)
	}
	go w.heartbeat()
	return w, nil
}

// claimSQL takes the first open chunk of the target whose lease is free or
// ran out, and returns its previous owner (0: none); claimExpiredSQL only
// one whose lease ran out. Neither takes a chunk of a run stopped for its
// error limit (StopRun).
var claimSQL, claimExpiredSQL = claimQuery(`lease_until IS NULL OR lease_until < now()`), claimQuery(`lease_until < now()`)

func claimQuery(free string) string {
	return `WITH c AS (
		SELECT id, owner AS prev, lease_until IS NOT NULL AS expired FROM chunks
		WHERE target_id = $1 AND NOT done AND (` + free + `)
			AND NOT EXISTS (SELECT 1 FROM runs s WHERE s.id = chunks.run_id AND s.stop_reason IS NOT NULL)
		ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
	UPDATE chunks SET owner = $2, fence = chunks.fence + 1, claimed_at = now(), lease_until = now() + make_interval(secs => $3)
	FROM c WHERE chunks.id = c.id
	RETURNING chunks.id, chunks.run_id, chunks.fence, c.prev, c.expired`
}

// Claim takes the next chunk free to work: one nobody holds, or whose
// holder's lease ran out, whose rows in flight then become in_doubt. It
// returns the chunk's rows still owed work, and ok false when no chunk is
// free now. Then it also ends the target's stopped runs whose chunks no
// live lease holds any more (a holder that died after the stop).
func (w *Worker) Claim(ctx context.Context) (chunk ledger.Chunk, ok bool, err error) {
	if chunk, ok, err = w.claim(ctx, claimSQL); err != nil || ok {
		return chunk, ok, err
	}
	return chunk, false, w.l.endStoppedRuns(ctx, w.targetID)
}

// ClaimExpired claims, as Claim does, a chunk whose holder's lease ran
// out. When there is none, wait is how long, on the database's clock,
// until the first lease another worker holds on an open chunk runs out;
// 0 when no other worker holds one.
func (w *Worker) ClaimExpired(ctx context.Context) (chunk ledger.Chunk, ok bool, wait time.Duration, err error) {
	if chunk, ok, err = w.claim(ctx, claimExpiredSQL); err != nil || ok {
		return chunk, ok, 0, err
	}
	var secs *float64
	if err := w.l.pool.QueryRow(ctx, `SELECT EXTRACT(EPOCH FROM min(lease_until) - now())::float8 FROM chunks
		WHERE target_id = $1 AND NOT done AND lease_until IS NOT NULL AND owner <> $2`, w.targetID, w.ID).Scan(&secs); err != nil {
		return chunk, false, 0, fmt.Errorf("ledger: next lease end: %w", err)
	}
	if secs != nil {
		// A lease that ran out between the two statements: look again soon.
		wait = max(time.Duration(*secs*float64(time.Second)), time.Millisecond)
	}
	return chunk, false, wait, nil
}

func (w *Worker) claim(ctx context.Context, query string) (chunk ledger.Chunk, ok bool, err error) {
	if err := w.Holds(); err != nil {
		return chunk, false, err
	}
	start := time.Now()
	var c claim
	err = pgx.BeginFunc(ctx, w.l.pool, func(tx pgx.Tx) error {
		var prev int64
		var expired bool
		err := tx.QueryRow(ctx, query, w.targetID, w.ID, w.opts.Lease.Seconds()).Scan(&c.chunk, &c.run, &c.fence, &prev, &expired)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		// A row in flight in the chunk claimed had a request out, or about
		// to leave, when its holder lost the chunk: its lease ran out, or
		// it gave the chunk back without recording the row (a write its
		// lost lease refused). It may have been sent.
		why := fmt.Sprintf("the lease of worker %d on its chunk ran out before an answer came", prev)
		if !expired {
			why = fmt.Sprintf("worker %d gave its chunk back before it recorded the answer", prev)
		}
		if _, err := tx.Exec(ctx, `UPDATE rows SET status = 'in_doubt', error_message = $2, updated_at = now()
			WHERE chunk_id = $1 AND status = 'in_flight'`, c.chunk, why); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT row_key, `+priorColumns+` FROM rows
			WHERE chunk_id = $1 AND status IN ('queued', 'in_doubt') ORDER BY id`, c.chunk)
		if err != nil {
			return err
		}
		var q ledger.Queued
		p := &q.Prior
		_, err = pgx.ForEachRow(rows, []any{&q.Key, &p.Status, &p.Email, &p.Type, &p.CustomerIDSent, &p.CustomerID,
			&p.Fingerprint, &p.SourceFile, &p.SourceLine, &p.Attempts, &p.FoldedEmail, &p.LastRun, &p.Message}, func() error {
			chunk.Rows = append(chunk.Rows, q)
			return nil
		})
		return err
	})
	if err != nil {
		return ledger.Chunk{}, false, fmt.Errorf("ledger: claim: %w", err)
	}
	if c.chunk == 0 {
		return ledger.Chunk{}, false, nil
	}
	c.deadline = start.Add(w.opts.Lease)
	chunk.ID, chunk.RunID = c.chunk, c.run
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held[c.chunk] = &c
	for _, q := range chunk.Rows {
		w.keys[q.Key] = &c
	}
	return chunk, true, nil
}

// Holds returns nil while every chunk the worker holds is surely its own:
// no heartbeat found one claimed by another, no commit of the ledger was
// refused for a lost lease, and each lease, by this process's clock, has
// not run out. Once it returns ErrLeaseLost it always does.
func (w *Worker) Holds() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost == nil {
		w.lost = w.l.w.leaseLost()
	}
	if w.lost != nil {
		return w.lost
	}
	now := time.Now()
	for _, c := range w.held {
		if now.After(c.deadline) {
			w.lost = fmt.Errorf("%w: the lease of chunk %d could not be extended in time", ErrLeaseLost, c.chunk)
			break
		}
	}
	return w.lost
}

// heartbeat extends the lease of every chunk held, each Lease/3, and
// records the worker's figures, until Finish.
func (w *Worker) heartbeat() {
	defer close(w.beatDone)
	every := w.opts.Lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := w.beat(ctx)
		cancel()
		if errors.Is(err, ErrLeaseLost) {
			return // Holds says so to every sender from now on
		}
	}
}

// beat extends the leases of the chunks held, in one statement: a chunk
// it could not extend has been claimed by another, and the worker has lost
// it, or it was ended (given back or done: no lease) since beat read it.
// A beat that fails otherwise extends nothing; Holds notices when the
// leases run out.
func (w *Worker) beat(ctx context.Context) error {
	w.mu.Lock()
	ids, fences := make([]int64, 0, len(w.held)), make([]int64, 0, len(w.held))
	for _, c := range w.held {
		if !c.ending {
			ids, fences = append(ids, c.chunk), append(fences, c.fence)
		}
	}
	w.mu.Unlock()
	var requests int64
	var rate float64
	if w.opts.Stats != nil {
		requests, rate = w.opts.Stats()
	}
	start := time.Now()
	var b pgx.Batch
	b.Queue(`UPDATE workers SET last_seen = now(), requests = $2, rate = $3 WHERE id = $1`, w.ID, requests, rate)
	ext := b.Queue(`UPDATE chunks AS c SET lease_until = now() + make_interval(secs => $3)
		FROM unnest($1::bigint[], $2::bigint[]) AS u (id, f)
		WHERE c.id = u.id AND c.fence = u.f AND c.lease_until IS NOT NULL RETURNING c.id`, ids, fences, w.opts.Lease.Seconds())
	extended := map[int64]bool{}
	var id int64
	ext.Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id}, func() error { extended[id] = true; return nil })
		return err
	})
	if err := w.l.pool.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, chunk := range ids {
		c, ok := w.held[chunk]
		switch {
		case !ok || c.ending || c.fence != fences[i]: // ended (and claimed again) meanwhile
		case extended[chunk]:
			c.deadline = start.Add(w.opts.Lease)
		case w.lost == nil:
			w.lost = fmt.Errorf("%w: chunk %d was claimed by another worker", ErrLeaseLost, chunk)
		}
	}
	return w.lost
}
