package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// A Worker's writes for the rows of its chunks: the writes of a Run, each
// fenced by the chunk that holds its row instead of by a run, and made as
// the import that queued the row.

// errNotHeld is the error of a write for a row of no chunk the worker holds.
var errNotHeld = errors.New("ledger: worker: the row is in no chunk this worker holds")

// errNotLoading is the error of the writes only an import that reads a
// file makes.
var errNotLoading = errors.New("ledger: worker: a worker records no line issues")

// op is a write for the row under key, fenced by its chunk.
func (w *Worker) op(kind opKind, key string) (writeOp, error) {
	if err := w.Holds(); err != nil {
		return writeOp{}, err
	}
	w.mu.Lock()
	c, ok := w.keys[key]
	w.mu.Unlock()
	if !ok {
		return writeOp{}, fmt.Errorf("%w: %s", errNotHeld, key)
	}
	return writeOp{kind: kind, targetID: w.targetID, runID: c.run, chunk: c.chunk, fence: c.fence, key: key}, nil
}

// MarkInFlight durably records that a request for s is about to leave.
func (w *Worker) MarkInFlight(ctx context.Context, s ledger.Send) error {
	_, err := w.MarkInFlightCommitted(ctx, []ledger.Send{s})
	return err
}

// MarkInFlightCommitted marks sends in flight, each fenced by its chunk,
// and returns once the marks are committed.
func (w *Worker) MarkInFlightCommitted(ctx context.Context, sends []ledger.Send) (*Pending, error) {
	for len(sends) > 0 {
		op, err := w.op(opMark, sends[0].Key)
		if err != nil {
			return nil, err
		}
		n := 1
		for n < len(sends) {
			next, err := w.op(opMark, sends[n].Key)
			if err != nil {
				return nil, err
			}
			if next.chunk != op.chunk {
				break
			}
			n++
		}
		op.sends = sends[:n]
		if err := w.l.w.submit(ctx, op, true); err != nil {
			return nil, err
		}
		sends = sends[n:]
	}
	return &Pending{}, nil
}

// Record writes o; like Run.Record, it does not wait for the commit.
func (w *Worker) Record(ctx context.Context, o ledger.Outcome) error {
	op, err := w.op(opRecord, o.Key)
	if err != nil {
		return err
	}
	op.outcome = o
	return w.l.w.submit(ctx, op, false)
}

// Release puts a row marked in flight back as prior, the row as the claim
// found it: still owed work by its chunk.
func (w *Worker) Release(ctx context.Context, key string, prior *ledger.Prior) error {
	op, err := w.op(opRelease, key)
	if err != nil {
		return err
	}
	if prior != nil {
		p := *prior
		op.prior = &p
	}
	return w.l.w.submit(ctx, op, false)
}

// RecordAssignsIDs records that the target assigns its own customer ids.
func (w *Worker) RecordAssignsIDs(ctx context.Context) error {
	return w.l.w.submit(ctx, writeOp{kind: opAssignsIDs, targetID: w.targetID}, false)
}

// RecordKeepsIDs records that the target keeps the customer ids it is sent.
func (w *Worker) RecordKeepsIDs(ctx context.Context) error {
	return w.l.w.submit(ctx, writeOp{kind: opKeepsIDs, targetID: w.targetID}, false)
}

// RecordLineIssue, ClearLineIssue, SetMessage and ReplaceWithLineIssue are
// an import's: a worker reads no file.
func (w *Worker) RecordLineIssue(context.Context, ledger.LineIssue) error { return errNotLoading }

func (w *Worker) ClearLineIssue(context.Context, string, int, string) error { return errNotLoading }

func (w *Worker) SetMessage(context.Context, string, string) error { return errNotLoading }

func (w *Worker) ReplaceWithLineIssue(context.Context, string, ledger.LineIssue) error {
	return errNotLoading
}

// ChunkEnd ends the worker's hold on a chunk: done when every row of it
// was taken to an outcome (the last chunk of a loaded import ends that
// import), else given back for another to claim at once. A chunk ended
// finished with a row of it still queued or in flight is given back. It
// returns once committed. A chunk claimed by another meanwhile is left as
// it is, and the error is ErrLeaseLost.
func (w *Worker) ChunkEnd(ctx context.Context, chunk int64, finished bool) error {
	w.mu.Lock()
	c, ok := w.held[chunk]
	if ok {
		c.ending = true
	}
	w.mu.Unlock()
	if !ok {
		return fmt.Errorf("ledger: chunk %d: not held", chunk)
	}
	err := w.l.w.submit(ctx, writeOp{kind: opChunkEnd, targetID: w.targetID, runID: c.run, chunk: c.chunk, fence: c.fence, finished: finished}, true)
	w.mu.Lock()
	delete(w.held, chunk)
	for k, kc := range w.keys {
		if kc == c {
			delete(w.keys, k)
		}
	}
	w.mu.Unlock()
	return err
}

// Idle reports whether no chunk of the target is open and no import of
// it is loading (more chunks may come), or, with run > 0, the same of that
// run.
func (w *Worker) Idle(ctx context.Context, run int64) (bool, error) {
	var open bool
	err := w.l.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM chunks WHERE target_id = $1 AND NOT done AND ($2 = 0 OR run_id = $2))
		OR EXISTS (SELECT 1 FROM runs r WHERE r.target_id = $1 AND ($2 = 0 OR r.id = $2) AND `+loadingRun+`)`,
		w.targetID, run).Scan(&open)
	if err != nil {
		return false, fmt.Errorf("ledger: idle: %w", err)
	}
	return !open, nil
}

// Finish stops the heartbeat, gives back the chunks still held, commits
// what is pending and records that the worker stopped, with its final
// count of requests. end is unused: a
// worker's counts are of the imports it worked for. A commit refused for
// a lost lease is its error (writes for that chunk were dropped).
func (w *Worker) Finish(ctx context.Context, _ ledger.RunEnd) error {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.beatDone
	w.mu.Lock()
	var left []int64
	for id := range w.held {
		left = append(left, id)
	}
	lost := w.lost
	w.mu.Unlock()
	var first error
	if lost == nil {
		for _, id := range left {
			if err := w.ChunkEnd(ctx, id, false); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := w.l.w.flush(ctx); err != nil && first == nil {
		first = err
	}
	if err := w.l.w.leaseLost(); err != nil && first == nil {
		first = err
	}
	var requests int64
	if w.opts.Stats != nil {
		requests, _ = w.opts.Stats()
	}
	if _, err := w.l.pool.Exec(ctx, `UPDATE workers SET stopped_at = now(), last_seen = now(), requests = $2, rate = 0 WHERE id = $1`,
		w.ID, requests); err != nil && first == nil {
		first = fmt.Errorf("ledger: worker: %w", err)
	}
	return first
}

// RunLimit reads the error limit of run, an import whose chunks the worker
// works, and whether it was stopped for it (Ledger.RunLimit).
func (w *Worker) RunLimit(ctx context.Context, run int64) (ledger.RunLimit, error) {
	return w.l.RunLimit(ctx, run)
}

// RunErrors counts the errors of run's rows, by every process
// (Ledger.RunErrors), once the outcomes this process recorded so far are
// committed, so that the count holds them.
func (w *Worker) RunErrors(ctx context.Context, run int64) (errs, finished int64, err error) {
	if err := w.l.w.flush(ctx); err != nil {
		return 0, 0, err
	}
	return w.l.RunErrors(ctx, run)
}

// StopRun stops run for its error limit (Ledger.StopRun).
func (w *Worker) StopRun(ctx context.Context, run int64, reason string) error {
	return w.l.StopRun(ctx, run, reason)
}
