package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AssignsIDs reports whether target is recorded as assigning its own
// customer ids (see ledger.Ledger.AssignsIDs).
func (l *Ledger) AssignsIDs(ctx context.Context, target string) (bool, error) {
	return l.targetRecorded(ctx, target, "assigns_ids_since")
}

// KeepsIDs reports whether target is recorded as keeping the customer ids
// it is sent (see ledger.Ledger.KeepsIDs).
func (l *Ledger) KeepsIDs(ctx context.Context, target string) (bool, error) {
	return l.targetRecorded(ctx, target, "keeps_ids_since")
}

// targetRecorded reports whether target's column, when a behaviour was
// first recorded, is set.
func (l *Ledger) targetRecorded(ctx context.Context, target, column string) (bool, error) {
	var set bool
	err := l.pool.QueryRow(ctx, `SELECT `+column+` IS NOT NULL FROM targets WHERE name = $1`, target).Scan(&set)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ledger: %s: %w", column, err)
	}
	return set, nil
}

// RecordAssignsIDs records that the run's target assigns its own customer
// ids; the first time recorded is kept. Like Record, it does not wait for
// the commit, and it is committed with, or before, the writes queued after
// it.
func (r *Run) RecordAssignsIDs(ctx context.Context) error {
	return r.l.w.submit(ctx, writeOp{kind: opAssignsIDs, targetID: r.targetID, runID: r.ID}, false)
}

// RecordKeepsIDs records that the run's target keeps the customer ids it
// is sent, as RecordAssignsIDs does.
func (r *Run) RecordKeepsIDs(ctx context.Context) error {
	return r.l.w.submit(ctx, writeOp{kind: opKeepsIDs, targetID: r.targetID, runID: r.ID}, false)
}
