package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// What a target does with the customer ids it is sent, as answers showed
// it: each a column of targets holding when it was first recorded.
const (
	assignsIDsColumn = "assigns_ids_since"
	keepsIDsColumn   = "keeps_ids_since"
)

// AssignsIDs reports whether a run on target recorded that it assigns its
// own customer ids (Run.RecordAssignsIDs). It only reads.
func (l *Ledger) AssignsIDs(ctx context.Context, target string) (bool, error) {
	return l.targetRecorded(ctx, target, assignsIDsColumn)
}

// KeepsIDs reports whether a run on target recorded that it keeps the
// customer ids it is sent (Run.RecordKeepsIDs). It only reads.
func (l *Ledger) KeepsIDs(ctx context.Context, target string) (bool, error) {
	return l.targetRecorded(ctx, target, keepsIDsColumn)
}

func (l *Ledger) targetRecorded(ctx context.Context, target, column string) (bool, error) {
	var since string
	err := l.db.QueryRowContext(ctx, `SELECT `+column+` FROM targets WHERE name = ?`, target).Scan(&since)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ledger: %s: %w", column, classifySQLite(err))
	}
	return since != "", nil
}

// RecordAssignsIDs records that the run's target assigns its own customer
// ids; the first time recorded is kept. Like Record, it does not wait for
// the commit, and it is committed with, or before, the writes queued after
// it.
func (r *Run) RecordAssignsIDs(ctx context.Context) error {
	return r.recordTarget(ctx, assignsIDsColumn)
}

// RecordKeepsIDs records that the run's target keeps the customer ids it
// is sent, as RecordAssignsIDs does.
func (r *Run) RecordKeepsIDs(ctx context.Context) error {
	return r.recordTarget(ctx, keepsIDsColumn)
}

func (r *Run) recordTarget(ctx context.Context, column string) error {
	return r.l.w.submit(ctx, func(tx *wtx) error {
		_, err := tx.exec(`UPDATE targets SET `+column+` = ? WHERE id = ? AND `+column+` = ''`, now(), r.targetID)
		return err
	}, false)
}
