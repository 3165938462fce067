package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Lookup returns what the ledger holds on target for each of keys that it
// knows. It only reads: a dry run uses it without starting a run.
func (l *Ledger) Lookup(ctx context.Context, target string, keys []string) (map[string]ledger.Prior, error) {
	out, err := l.lookup(ctx, target, keys, lookupSQL)
	if err != nil {
		return nil, fmt.Errorf("ledger: lookup: %w", err)
	}
	return out, nil
}

// LookupByEmail returns, for each of emails that a row holds as its
// Send.FoldedEmail on target, that row; of several, the one whose customer
// most surely exists (done, then in doubt or in flight). It only reads.
func (l *Ledger) LookupByEmail(ctx context.Context, target string, emails []string) (map[string]ledger.Prior, error) {
	out, err := l.lookup(ctx, target, emails, lookupByEmailSQL)
	if err != nil {
		return nil, fmt.Errorf("ledger: lookup by email: %w", err)
	}
	return out, nil
}

// lookupSQL reads the rows of target $1 under the keys $2. It probes the
// index once for each key: a subquery per key (LATERAL, kept apart by
// OFFSET 0), which the planner cannot turn into one scan of the target's
// rows. A load grows the table far faster than autovacuum analyzes it;
// without statistics, the planner took "target_id = $1 AND row_key =
// ANY($2)" for a scan of every row of the target, filtered by key: 20 to
// 100 ms a lookup a few hundred thousand rows into a load, not about one.
const lookupSQL = `SELECT u.k, r.* FROM unnest($2::text[]) AS u (k)
	CROSS JOIN LATERAL (SELECT ` + lookupColumns + ` FROM rows
		WHERE target_id = $1 AND row_key = u.k OFFSET 0) AS r`

// lookupByEmailSQL reads the rows of target $1 that hold one of the folded
// emails $2, probing the index per email as lookupSQL does. The <> ” term
// is the partial index's own.
const lookupByEmailSQL = `SELECT u.e, r.* FROM unnest($2::text[]) AS u (e)
	CROSS JOIN LATERAL (SELECT ` + lookupColumns + ` FROM rows
		WHERE target_id = $1 AND folded_email <> '' AND folded_email = u.e OFFSET 0) AS r`

// lookupColumns are priorColumns as a lookup reads them: a row that a
// fleet import queued and no worker has taken to an outcome yet (its chunk
// is open) is queued, whatever it was before, so that no later import
// queues or sends it a second time. A row still queued in a chunk that is
// done was not sent by its import (stopped for its error limit): it reads
// failed, as a row that nothing was sent for, so that a later import of
// its file sends it; unless it was in doubt when an import with
// resendInDoubt queued it (Queue writes it queued for such an import, and
// queued_in_doubt): its customer may exist, and it reads in_doubt, as it
// was.
const lookupColumns = `CASE WHEN chunk_id IS NULL OR status NOT IN ('queued', 'in_flight', 'in_doubt') THEN status
		WHEN EXISTS (SELECT 1 FROM chunks c WHERE c.id = rows.chunk_id AND NOT c.done) THEN 'queued'
		WHEN status = 'queued' AND queued_in_doubt THEN 'in_doubt'
		WHEN status = 'queued' THEN 'failed' ELSE status END,
	email, type, customer_id_sent, customer_id, fingerprint, source_file, source_line, attempts, folded_email, last_run, error_message`

// owedStatus is a row's status, or queued while a fleet owes it work.
const owedStatus = `CASE WHEN chunk_id IS NOT NULL AND status IN ('queued', 'in_flight', 'in_doubt')
		AND EXISTS (SELECT 1 FROM chunks c WHERE c.id = rows.chunk_id AND NOT c.done) THEN 'queued' ELSE status END`

const priorColumns = `status, email, type, customer_id_sent, customer_id, fingerprint, source_file, source_line, attempts, folded_email, last_run, error_message`

// lookupChunk is the most keys one statement asks for, so that a resume's
// million keys do not make one array of a million.
const lookupChunk = 10000

func (l *Ledger) lookup(ctx context.Context, target string, keys []string, query string) (map[string]ledger.Prior, error) {
	out := make(map[string]ledger.Prior, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	tid, ok, err := l.targetID(ctx, target, false)
	if err != nil || !ok {
		return out, err
	}
	for start := 0; start < len(keys); start += lookupChunk {
		part := keys[start:min(start+lookupChunk, len(keys))]
		rows, err := l.pool.Query(ctx, query, tid, part)
		if err != nil {
			return nil, err
		}
		var k string
		var p ledger.Prior
		_, err = pgx.ForEachRow(rows, []any{&k, &p.Status, &p.Email, &p.Type, &p.CustomerIDSent, &p.CustomerID,
			&p.Fingerprint, &p.SourceFile, &p.SourceLine, &p.Attempts, &p.FoldedEmail, &p.LastRun, &p.Message}, func() error {
			if have, ok := out[k]; ok && existence(have.Status) >= existence(p.Status) {
				return nil // by email, several rows: the one most surely existing wins
			}
			out[k] = p
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// existence ranks states by how surely their customer exists, as package
// ledger does.
func existence(s row.Status) int {
	switch {
	case s.Done():
		return 2
	case s.MayExist():
		return 1
	}
	return 0
}
