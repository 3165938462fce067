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
	var assigns bool
	err := l.pool.QueryRow(ctx, `SELECT assigns_ids_since IS NOT NULL FROM targets WHERE name = $1`, target).Scan(&assigns)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ledger: assigns ids: %w", err)
	}
	return assigns, nil
}

// RecordAssignsIDs records that the run's target assigns its own customer
// ids; the first time recorded is kept. Like Record, it does not wait for
// the commit, and it is committed with, or before, the writes queued after
// it.
func (r *Run) RecordAssignsIDs(ctx context.Context) error {
	return r.l.w.submit(ctx, writeOp{kind: opAssignsIDs, targetID: r.targetID, runID: r.ID}, false)
}

// KeepsIDs reports whether target is recorded as keeping the customer ids
// it is sent (see ledger.Ledger.KeepsIDs).
func (l *Ledger) KeepsIDs(ctx context.Context, target string) (bool, error) {
	var keeps bool
	err := l.pool.QueryRow(ctx, `SELECT keeps_ids_since IS NOT NULL FROM targets WHERE name = $1`, target).Scan(&keeps)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ledger: keeps ids: %w", err)
	}
	return keeps, nil
}

// RecordKeepsIDs records that the run's target keeps the customer ids it
// is sent; the first time recorded is kept. Like Record, it does not wait
// for the commit.
func (r *Run) RecordKeepsIDs(ctx context.Context) error {
	return r.l.w.submit(ctx, writeOp{kind: opKeepsIDs, targetID: r.targetID, runID: r.ID}, false)
}
