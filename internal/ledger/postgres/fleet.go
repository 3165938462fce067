package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Fleet mode: an import (a Run) queues its rows to send in chunks instead
// of sending them, and any process working the target (a Worker) claims a
// chunk by lease and sends its rows. The target's lock serializes the
// imports that load rows; workers never take it. See worker.go for claims.

// Queue writes sends as queued rows of one new chunk of the run, for a
// worker to claim. A row the ledger held in doubt stays in_doubt (the
// worker then knows it may have been sent), unless the import was asked
// to send rows in doubt again (its options' resendInDoubt: the operator
// checked them, and its workers are to send them, not hold them); any
// other becomes queued. Its attempts are not counted: the worker's
// MarkInFlight counts them. It returns once committed, so the next
// lookups see the rows.
func (r *Run) Queue(ctx context.Context, sends []ledger.Send) error {
	if len(sends) == 0 {
		return nil
	}
	return r.l.w.submit(ctx, writeOp{kind: opQueue, targetID: r.targetID, runID: r.ID, sends: sends}, true)
}

// maxAhead is the most writes QueueAhead leaves uncommitted: enough for
// the writer to commit one batch while the loader plans the next, few
// enough that the rows held in memory stay a few chunks' worth.
const maxAhead = 8

// QueueAhead queues sends as Queue does, but returns before they are
// committed, once at most maxAhead writes of the run are still to commit:
// the writer commits them in order, and lookups see them after QueueSync.
// It is for a load into a target that held no row (TargetEmpty), whose
// rows' keys are distinct: the rows are copied in (copy.go), and one the
// ledger holds already fails the write. A write that fails fails every
// later one, Loaded's included. Only one goroutine may queue ahead.
func (r *Run) QueueAhead(ctx context.Context, sends []ledger.Send) error {
	if len(sends) == 0 {
		return nil
	}
	op := writeOp{kind: opQueue, targetID: r.targetID, runID: r.ID, sends: sends, copy: true, done: make(chan error, 1)}
	if err := r.l.w.send(ctx, op); err != nil {
		return err
	}
	r.ahead = append(r.ahead, op.done)
	if len(r.ahead) <= maxAhead {
		return nil
	}
	err := <-r.ahead[0]
	r.ahead = r.ahead[1:]
	return err
}

// QueueSync returns once every write QueueAhead queued is committed.
func (r *Run) QueueSync(context.Context) error {
	var first error
	for _, done := range r.ahead {
		if err := <-done; err != nil && first == nil {
			first = err
		}
	}
	r.ahead = nil
	return first
}

// TargetEmpty reports whether the run's target holds no row at all. The
// run holds the target's lock, which every import that writes rows takes,
// and workers write only the rows of chunks already queued: while the run
// queues, no other process adds a row to the target.
func (r *Run) TargetEmpty(ctx context.Context) (bool, error) {
	var empty bool
	if err := r.l.pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM rows WHERE target_id = $1)`, r.targetID).Scan(&empty); err != nil {
		return false, fmt.Errorf("ledger: target empty: %w", err)
	}
	return empty, nil
}

// Loaded records that the run has queued every row it will (end's counts
// are of the rows it read; the rows it queued are counted as they end) and
// releases the target's lock. The run stays running while a chunk of it is
// open; the commit that ends its last chunk, or this one when none is open,
// ends it completed. It releases the lock even when it fails.
func (r *Run) Loaded(ctx context.Context, end ledger.RunEnd) error {
	defer r.unlock()
	counts, err := json.Marshal(end.Counts.Record())
	if err != nil {
		return fmt.Errorf("ledger: loaded: %w", err)
	}
	if err := r.l.w.submit(ctx, writeOp{kind: opLoaded, targetID: r.targetID, runID: r.ID, end: end, endCounts: counts}, true); err != nil {
		return fmt.Errorf("ledger: loaded: %w", err)
	}
	return nil
}

// StopReason is why the fleet stopped the run for its error limit
// (StopRun); "" while it did not.
func (r *Run) StopReason(ctx context.Context) (string, error) {
	lim, err := r.l.RunLimit(ctx, r.ID)
	return lim.Stopped, err
}

// queueSQL inserts a chunk and its rows in one statement. On a row the
// ledger knows, it takes the send's fields, as markSQL does.
const queueSQL = `WITH c AS (INSERT INTO chunks (target_id, run_id) VALUES ($1, $2) RETURNING id)
	INSERT INTO rows AS r (target_id, row_key, email, type, customer_id_sent, status, attempts,
		source_file, source_line, fingerprint, folded_email, first_run, last_run, created_at, updated_at, chunk_id)
	SELECT $1, k, e, ty, cid, 'queued', 0, f, l, fp, fe, $2, $2, now(), now(), (SELECT id FROM c)
	FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::text[], $10::text[])
		AS u (k, e, ty, cid, f, l, fp, fe)
	ON CONFLICT (target_id, row_key) DO UPDATE SET
		email = excluded.email, type = excluded.type, customer_id_sent = excluded.customer_id_sent,
		folded_email = excluded.folded_email,
		status = CASE WHEN r.status = 'in_flight' OR (r.status = 'in_doubt' AND NOT COALESCE(
				(SELECT (options->>'resendInDoubt')::boolean FROM runs WHERE id = $2), false)) THEN 'in_doubt' ELSE 'queued' END,
		queued_in_doubt = r.status IN ('in_doubt', 'in_flight'),
		source_file = excluded.source_file, source_line = excluded.source_line,
		fingerprint = excluded.fingerprint, last_run = excluded.last_run, updated_at = excluded.updated_at,
		chunk_id = excluded.chunk_id`

func queueArgs(op *writeOp) []any {
	n := len(op.sends)
	key, email, typ, cid, file, fp, folded := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	line := make([]int32, n)
	for i, s := range op.sends {
		key[i], email[i], typ[i], cid[i], file[i], fp[i], folded[i] = s.Key, s.Email, s.Type, s.CustomerID, s.SourceFile, s.Fingerprint, s.FoldedEmail
		line[i] = int32(s.SourceLine)
	}
	return []any{op.targetID, op.runID, key, email, typ, cid, file, line, fp, folded}
}

// completeRunSQL ends run $1 once it is loaded and none of its chunks is
// open, as its loading ended (completed, or interrupted), or aborted when
// it was stopped for its error limit: its counts are the loader's, with
// the rows it queued counted by the status they ended in.
const completeRunSQL = `UPDATE runs SET outcome = CASE WHEN runs.stop_reason IS NOT NULL THEN 'aborted'
		ELSE COALESCE(runs.load_outcome, 'completed') END, ended_at = now(), counts = COALESCE((
		SELECT jsonb_object_agg(k, v) FROM (
			SELECT k, SUM(v) AS v FROM (
				SELECT key AS k, value::bigint AS v FROM jsonb_each_text(runs.counts)
				UNION ALL
				SELECT r.status, COUNT(*) FROM rows r JOIN chunks c ON c.id = r.chunk_id WHERE c.run_id = runs.id GROUP BY r.status
				UNION ALL
				SELECT 'not_started', -COUNT(*) FROM rows r JOIN chunks c ON c.id = r.chunk_id WHERE c.run_id = runs.id
			) AS each GROUP BY k) AS total), '{}')
	WHERE id = $1 AND loaded_at IS NOT NULL AND outcome = 'running'
		AND NOT EXISTS (SELECT 1 FROM chunks WHERE run_id = $1 AND NOT done)`

// queueFleet queues the statements of the fleet's writes.
func queueFleet(b *pgx.Batch, op *writeOp) {
	switch op.kind {
	case opQueue:
		b.Queue(queueSQL, queueArgs(op)...)
	case opLoaded:
		if op.end.ReadWholeFile {
			b.Queue(`DELETE FROM line_issues WHERE target_id = $1 AND source_file = $2 AND run_id < $3`,
				op.targetID, op.end.SourceFile, op.runID)
		}
		b.Queue(`UPDATE runs SET loaded_at = now(), load_outcome = $3, counts = $1 WHERE id = $2`,
			string(op.endCounts), op.runID, op.end.Outcome)
		b.Queue(closeStoppedSQL, op.runID, leaseRanOut)
		b.Queue(completeRunSQL, op.runID)
	case opChunkEnd:
		if !op.finished {
			b.Queue(`UPDATE chunks SET lease_until = NULL WHERE id = $1 AND fence = $2`, op.chunk, op.fence)
		} else {
			// A row still queued or in flight (put back, or never reached) is
			// owed work: its chunk is given back instead.
			b.Queue(`UPDATE chunks SET lease_until = NULL, done = NOT EXISTS (
					SELECT 1 FROM rows WHERE chunk_id = $1 AND status IN ('queued', 'in_flight'))
				WHERE id = $1 AND fence = $2`, op.chunk, op.fence)
		}
		queueEndRun(b, op.runID)
	}
}

// queueEndRun queues the statements that end run $1 if it is over: its
// last chunk done, or, stopped, none of its chunks held.
func queueEndRun(b *pgx.Batch, runID int64) {
	b.Queue(closeStoppedSQL, runID, leaseRanOut)
	b.Queue(completeRunSQL, runID)
	b.Queue(crashedLoadSQL, runID)
}

// leaseRanOut is the message of a row left in flight by a worker whose
// lease ran out.
const leaseRanOut = "the lease of the worker sending it ran out before an answer came"

// closeStoppedSQL closes the open chunks of run $1, stopped for its error
// limit, once no live lease holds one of them: they are done, their rows
// not sent left queued (lookups read those as not sent, so that a later
// import of the file queues them again), and a row a dead holder left in
// flight becomes in_doubt, with message $2. completeRunSQL then ends the
// run aborted. A chunk claimed meanwhile is left to its holder, whose
// ChunkEnd closes it.
const closeStoppedSQL = `WITH s AS (
		SELECT id FROM runs WHERE id = $1 AND outcome = 'running' AND stop_reason IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM chunks WHERE run_id = $1 AND NOT done AND lease_until >= now())),
	c AS (UPDATE chunks SET done = true, lease_until = NULL
		WHERE run_id IN (SELECT id FROM s) AND NOT done AND (lease_until IS NULL OR lease_until < now()) RETURNING id)
	UPDATE rows SET status = 'in_doubt', error_message = $2, updated_at = now()
	WHERE chunk_id IN (SELECT id FROM c) AND status = 'in_flight'`

// endStoppedRuns ends the target's runs stopped for their error limit that
// no live lease holds a chunk of: the last holder died after the stop, and
// no ChunkEnd will come.
func (l *Ledger) endStoppedRuns(ctx context.Context, targetID int64) error {
	rows, err := l.pool.Query(ctx, `SELECT id FROM runs WHERE target_id = $1 AND outcome = 'running' AND stop_reason IS NOT NULL`, targetID)
	if err != nil {
		return fmt.Errorf("ledger: stopped runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("ledger: stopped runs: %w", err)
	}
	for _, id := range ids {
		var b pgx.Batch
		b.Queue(`SELECT id FROM runs WHERE id = $1 FOR UPDATE`, id) // as the writer's chunk ends do
		queueEndRun(&b, id)
		if err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, &b).Close() }); err != nil {
			return fmt.Errorf("ledger: end stopped run %d: %w", id, err)
		}
	}
	return nil
}

// RunLimit reads run's error limit from its options, and whether it was
// stopped for it: one row by its key, cheap enough to read before a
// request.
func (l *Ledger) RunLimit(ctx context.Context, runID int64) (ledger.RunLimit, error) {
	var lim ledger.RunLimit
	err := l.pool.QueryRow(ctx, `SELECT COALESCE((options->>'maxErrors')::bigint, 0), COALESCE((options->>'maxErrorRate')::float8, 0),
		COALESCE(stop_reason, '') FROM runs WHERE id = $1`, runID).Scan(&lim.MaxErrors, &lim.MaxErrorRate, &lim.Stopped)
	if err != nil {
		return lim, fmt.Errorf("ledger: run %d limit: %w", runID, err)
	}
	return lim, nil
}

// RunErrors counts the rows the run queued that ended rejected, failed or
// in doubt (errs), and those and the ones created or existing (finished),
// whichever process sent them: the counts of an import's --max-errors. A
// row queued in doubt counts only once a claim of its chunk has taken it
// to in_doubt again (or the chunk is done), not while it waits to be sent.
// It reads every row of the run: call it sparingly.
func (l *Ledger) RunErrors(ctx context.Context, runID int64) (errs, finished int64, err error) {
	err = l.pool.QueryRow(ctx, `WITH e AS (
			SELECT r.status, r.status IN ('rejected', 'failed')
				OR (r.status = 'in_doubt' AND (c.done OR r.updated_at > c.claimed_at)) AS err
			FROM rows r JOIN chunks c ON c.id = r.chunk_id WHERE c.run_id = $1)
		SELECT COUNT(*) FILTER (WHERE err), COUNT(*) FILTER (WHERE err OR status IN ('created', 'exists')) FROM e`,
		runID).Scan(&errs, &finished)
	if err != nil {
		return 0, 0, fmt.Errorf("ledger: run %d errors: %w", runID, err)
	}
	return errs, finished, nil
}

// StopRun records that run reached its error limit, for reason: no process
// claims its chunks any more, and the run ends aborted once none is held.
// A run already stopped keeps its first reason; one that ended is left as
// it ended.
func (l *Ledger) StopRun(ctx context.Context, runID int64, reason string) error {
	if _, err := l.pool.Exec(ctx, `UPDATE runs SET stop_reason = $2 WHERE id = $1 AND outcome = 'running' AND stop_reason IS NULL`,
		runID, reason); err != nil {
		return fmt.Errorf("ledger: stop run %d: %w", runID, err)
	}
	return nil
}

// loadingRun is true for run r while its loader lives: r is running, not
// loaded, and the target's lock (run.go's lockTarget) is held, by r's
// connection, as no later import has taken the target since.
const loadingRun = `(r.outcome = 'running' AND r.loaded_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM runs later WHERE later.target_id = r.target_id AND later.id > r.id)
	AND EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
		AND objid::bigint = r.target_id))`

// crashedLoadSQL ends run $1 crashed once none of its chunks is open when
// it was never loaded and its loader is gone (killed while loading).
const crashedLoadSQL = `UPDATE runs SET outcome = 'crashed', counts = ` + deadRunCounts + `
	WHERE id = $1 AND outcome = 'running' AND loaded_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM chunks WHERE run_id = $1 AND NOT done)
		AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = $1 AND ` + loadingRun + `)`

// FleetCounts counts the rows the run queued that have ended, by their
// status, and how many are still owed work (queued, in flight, or in doubt
// in a chunk not done) or were never sent (queued by a run stopped for its
// error limit). A row queued again by a later import counts there.
func (l *Ledger) FleetCounts(ctx context.Context, runID int64) (ended map[row.Status]int, left int, err error) {
	rows, err := l.pool.Query(ctx, `SELECT r.status, (NOT c.done AND r.status IN ('queued', 'in_flight', 'in_doubt')) OR r.status = 'queued', COUNT(*)
		FROM rows r JOIN chunks c ON c.id = r.chunk_id WHERE c.run_id = $1 GROUP BY 1, 2`, runID)
	if err != nil {
		return nil, 0, fmt.Errorf("ledger: fleet counts: %w", err)
	}
	ended = map[row.Status]int{}
	var st row.Status
	var owed bool
	var n int
	_, err = pgx.ForEachRow(rows, []any{&st, &owed, &n}, func() error {
		if owed {
			left += n
		} else {
			ended[st] += n
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("ledger: fleet counts: %w", err)
	}
	return ended, left, nil
}

// RunEnded reports whether the run has ended, and how.
func (l *Ledger) RunEnded(ctx context.Context, runID int64) (outcome string, ended bool, err error) {
	err = l.pool.QueryRow(ctx, `SELECT outcome, ended_at IS NOT NULL FROM runs WHERE id = $1`, runID).Scan(&outcome, &ended)
	if err != nil {
		return "", false, fmt.Errorf("ledger: run %d: %w", runID, err)
	}
	return outcome, ended, nil
}
