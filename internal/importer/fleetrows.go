package importer

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// rowQueue holds the rows of the chunks claimed that wait for the pool:
// ready, marked in flight, in the order they start, then unmarked, in the
// order they are marked. Rows are marked a batch (Config.MarkAhead) at a
// time as the pool takes them, not at their chunk's claim, so a worker that dies leaves at
// most its pool and a batch in flight (in doubt, though most never left),
// not whole chunks.
type rowQueue struct {
	ready    []func() error
	unmarked []claimedRow
	batch    int // rows marked in one write
}

// claimedRow is a row of a claimed chunk: its mark, its sending once
// marked, and its end unsent when the run stops before it is marked.
type claimedRow struct {
	mark ledger.Send
	run  int64 // the import that queued it
	send func() error
	drop func()
}

// waiting reports whether rows wait for the pool.
func (q *rowQueue) waiting() bool { return q.left() > 0 }

// left is how many rows wait for the pool.
func (q *rowQueue) left() int { return len(q.ready) + len(q.unmarked) }

// startSome starts rows while the pool has room, and marks the next batch
// in flight, in one write, when no marked row waits. A row is started
// only once its mark is committed.
func (im *Importer) startSome(ctx context.Context, g *errgroup.Group, w Worker, q *rowQueue) error {
	for {
		for len(q.ready) > 0 {
			select {
			case im.places <- struct{}{}:
			default:
				return nil // the pool is full
			}
			g.Go(im.inPlace(q.ready[0]))
			q.ready[0] = nil
			q.ready = q.ready[1:]
		}
		q.unmarked = im.dropStopped(q.unmarked)
		if len(q.unmarked) == 0 {
			return nil
		}
		rows := q.unmarked[:min(max(q.batch, 1), len(q.unmarked))]
		marks := make([]ledger.Send, len(rows))
		for i, r := range rows {
			marks[i] = r.mark
		}
		if _, err := w.MarkInFlightCommitted(context.WithoutCancel(ctx), marks); err != nil {
			return err
		}
		im.counts.inFlight.Add(int64(len(rows)))
		for _, r := range rows {
			q.ready = append(q.ready, r.send)
		}
		q.unmarked = q.unmarked[len(rows):]
	}
}

// dropStopped ends unsent, without marking them, the rows of runs this
// process knows were stopped for their error limit, and returns the others.
func (im *Importer) dropStopped(rows []claimedRow) []claimedRow {
	if im.fleet == nil {
		return rows
	}
	kept := rows[:0]
	for _, r := range rows {
		if im.fleet.stopped(r.run) {
			r.drop()
			continue
		}
		kept = append(kept, r)
	}
	clear(rows[len(kept):])
	return kept
}
