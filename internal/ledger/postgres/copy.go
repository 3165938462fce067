package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// A load into a target that held no row queues its rows by COPY: none of
// them can be in the ledger already, so they need no upsert, and COPY
// costs the database a fraction of an INSERT over arrays.

// queueColumns are the columns of rows that commitCopy writes.
var queueColumns = []string{"target_id", "row_key", "email", "type", "customer_id_sent", "status", "attempts",
	"source_file", "source_line", "fingerprint", "folded_email", "first_run", "last_run", "created_at", "updated_at", "chunk_id"}

// allCopied reports whether every write of batch queues rows new to the
// ledger (QueueAhead).
func allCopied(batch []writeOp) bool {
	for _, op := range batch {
		if op.kind != opQueue || !op.copy {
			return false
		}
	}
	return len(batch) > 0
}

// commitCopy commits a batch of allCopied writes in one transaction: the
// run's fence, a chunk for each write, then every row by COPY. Like any
// load it waits for no disk flush (see commit).
func (w *writer) commitCopy(ctx context.Context, batch []writeOp) error {
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return commitError(err)
	}
	defer tx.Rollback(ctx)
	targets, runs := make([]int64, len(batch)), make([]int64, len(batch))
	for i, op := range batch {
		targets[i], runs[i] = op.targetID, op.runID
	}
	var b pgx.Batch
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	b.Queue(`SELECT fence_runs($1)`, runsOf(batch))
	var now time.Time // the transaction's now(), as the INSERT would write
	b.Queue(`SELECT now()`).QueryRow(func(r pgx.Row) error { return r.Scan(&now) })
	// Identity values follow the order rows are inserted in, which is
	// the SELECT's: the chunks' ids, sorted, are the writes' in order.
	var chunks []int64
	b.Queue(`INSERT INTO chunks (target_id, run_id)
		SELECT t, r FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS u (t, r, n) ORDER BY n RETURNING id`,
		targets, runs).Query(func(rows pgx.Rows) error {
		var err error
		chunks, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return commitError(err)
	}
	slices.Sort(chunks)
	src := &copySource{batch: batch, chunks: chunks, now: now, op: 0, i: -1}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"rows"}, queueColumns, src); err != nil {
		return commitError(err)
	}
	return commitError(tx.Commit(ctx))
}

// copySource yields the rows of batch's writes, each in its write's chunk.
type copySource struct {
	batch  []writeOp
	chunks []int64
	now    time.Time
	op, i  int
}

func (s *copySource) Next() bool {
	s.i++
	for s.op < len(s.batch) && s.i >= len(s.batch[s.op].sends) {
		s.op, s.i = s.op+1, 0
	}
	return s.op < len(s.batch)
}

func (s *copySource) Values() ([]any, error) {
	op := &s.batch[s.op]
	q := op.sends[s.i]
	return []any{op.targetID, q.Key, q.Email, q.Type, q.CustomerID, "queued", int32(0),
		q.SourceFile, int32(q.SourceLine), q.Fingerprint, q.FoldedEmail, op.runID, op.runID, s.now, s.now, s.chunks[s.op]}, nil
}

func (s *copySource) Err() error { return nil }
