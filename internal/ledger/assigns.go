package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// AssignsIDs reports whether a run on target recorded that it assigns its
// own customer ids (Run.RecordAssignsIDs). It only reads.
func (l *Ledger) AssignsIDs(ctx context.Context, target string) (bool, error) {
	var since string
	err := l.db.QueryRowContext(ctx, `SELECT assigns_ids_since FROM targets WHERE name = ?`, target).Scan(&since)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ledger: assigns ids: %w", classifySQLite(err))
	}
	return since != "", nil
}

// RecordAssignsIDs records that the run's target assigns its own customer
// ids; the first time recorded is kept. Like Record, it does not wait for
// the commit, and it is committed with, or before, the writes queued after
// it.
func (r *Run) RecordAssignsIDs(ctx context.Context) error {
	return r.l.w.submit(ctx, func(tx *wtx) error {
		_, err := tx.exec(`UPDATE targets SET assigns_ids_since = ? WHERE id = ? AND assigns_ids_since = ''`, now(), r.targetID)
		return err
	}, false)
}

// KeepsIDs reports whether a run on target recorded that it keeps the
// customer ids it is sent (Run.RecordKeepsIDs). It only reads.
func (l *Ledger) KeepsIDs(ctx context.Context, target string) (bool, error) {
	var since string
	err := l.db.QueryRowContext(ctx, `SELECT keeps_ids_since FROM targets WHERE name = ?`, target).Scan(&since)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ledger: keeps ids: %w", classifySQLite(err))
	}
	return since != "", nil
}

// RecordKeepsIDs records that the run's target keeps the customer ids it
// is sent; the first time recorded is kept. Like Record, it does not wait
// for the commit.
func (r *Run) RecordKeepsIDs(ctx context.Context) error {
	return r.l.w.submit(ctx, func(tx *wtx) error {
		_, err := tx.exec(`UPDATE targets SET keeps_ids_since = ? WHERE id = ? AND keeps_ids_since = ''`, now(), r.targetID)
		return err
	}, false)
}
