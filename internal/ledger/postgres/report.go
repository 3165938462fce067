package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Report counts the target's rows per status (rows a fleet still owes
// work count as queued, other rows in flight as in_doubt) and lists its last maxRuns runs, newest first. A target the
// ledger has never seen reports zeros.
func (l *Ledger) Report(ctx context.Context, target string, maxRuns int) (ledger.Report, error) {
	rep := ledger.Report{Target: target, Counts: make(map[row.Status]int, len(row.Statuses)), Runs: []ledger.RunRecord{}}
	for _, s := range row.Statuses {
		rep.Counts[s] = 0
	}
	tid, ok, err := l.targetID(ctx, target, false)
	if err != nil {
		return rep, fmt.Errorf("ledger: report: %w", err)
	}
	if !ok {
		return rep, nil
	}
	rows, err := l.pool.Query(ctx, `
		SELECT `+owedStatus+`, COUNT(*) FROM rows WHERE target_id = $1 GROUP BY 1
		UNION ALL
		SELECT status, COUNT(*) FROM line_issues WHERE target_id = $1 GROUP BY status`, tid)
	if err != nil {
		return rep, fmt.Errorf("ledger: report: %w", err)
	}
	var s row.Status
	var n int
	_, err = pgx.ForEachRow(rows, []any{&s, &n}, func() error {
		if s == row.InFlight {
			s = row.InDoubt
		}
		rep.Counts[s] += n
		rep.Rows += n
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("ledger: report: %w", err)
	}
	rows, err = l.pool.Query(ctx, `SELECT id, source_file, started_at, ended_at, outcome, counts::text, options::text,
			COALESCE(stop_reason, '')
		FROM runs WHERE target_id = $1 ORDER BY id DESC LIMIT $2`, tid, maxRuns)
	if err != nil {
		return rep, fmt.Errorf("ledger: report: %w", err)
	}
	var rr ledger.RunRecord
	var started time.Time
	var ended *time.Time
	var counts, opts string
	_, err = pgx.ForEachRow(rows, []any{&rr.ID, &rr.SourceFile, &started, &ended, &rr.Outcome, &counts, &opts, &rr.StoppedBy}, func() error {
		r := rr
		r.StartedAt = stamp(started)
		if ended != nil {
			r.EndedAt = stamp(*ended)
		}
		_ = json.Unmarshal([]byte(counts), &r.Counts)
		r.Options = json.RawMessage(opts)
		rep.Runs = append(rep.Runs, r)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("ledger: report: %w", err)
	}
	for i := range rep.Runs {
		if rep.Runs[i].Outcome == "running" {
			if err := l.liveCounts(ctx, &rep.Runs[i]); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// liveCounts sets the counts of a fleet import that has not ended from its
// queued rows as they stand, whichever process took them to an outcome:
// its record holds only what its loader counted (rows read, refused,
// skipped) until it ends. A run that queued nothing keeps its record.
func (l *Ledger) liveCounts(ctx context.Context, r *ledger.RunRecord) error {
	ended, left, err := l.FleetCounts(ctx, r.ID)
	if err != nil || len(ended) == 0 && left == 0 {
		return err
	}
	c := row.CountsOf(r.Counts)
	c.Created, c.Exists = int64(ended[row.Created]), int64(ended[row.Exists])
	c.Rejected, c.Failed = int64(ended[row.Rejected]), int64(ended[row.Failed])
	c.InDoubt = int64(ended[row.InDoubt] + ended[row.InFlight])
	c.Pending = int64(left)
	c.Read = max(c.Read, c.Done()+c.NotDone()) // a load under way has read at least these
	r.Counts = c.Record()
	return nil
}

// stamp writes t as the SQLite ledger writes its times.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Failures calls fn for every row of target whose status is in statuses
// (all not-done statuses when empty), ordered by file and line; not the
// rows a fleet still owes work, which are not failures yet. It streams:
// rows are read as fn takes them.
func (l *Ledger) Failures(ctx context.Context, target string, statuses []row.Status, fn func(ledger.Failure) error) error {
	if len(statuses) == 0 {
		statuses = []row.Status{row.Invalid, row.Duplicate, row.Rejected, row.Failed, row.InDoubt}
	}
	var want []string
	for _, s := range statuses {
		want = append(want, string(s))
		if s == row.InDoubt {
			want = append(want, string(row.InFlight))
		}
	}
	tid, ok, err := l.targetID(ctx, target, false)
	if err != nil {
		return fmt.Errorf("ledger: failures: %w", err)
	}
	if !ok {
		return nil
	}
	// COLLATE "C": files in byte order, as SQLite orders them, whatever
	// the database's collation. The fields of a line issue are the file's
	// bytes; as Go strings they come back as they went in.
	rows, err := l.pool.Query(ctx, `SELECT * FROM (
			SELECT convert_to(email, 'UTF8') AS email, convert_to(type, 'UTF8') AS type,
					convert_to(customer_id_sent, 'UTF8') AS customer_id, status, error_message AS reason, source_file, source_line
				FROM rows WHERE target_id = $1 AND status = ANY($2::text[]) AND `+owedStatus+` <> 'queued'
			UNION ALL
			SELECT email, type, customer_id, status, reason, source_file, source_line
				FROM line_issues WHERE target_id = $1 AND status = ANY($2::text[])
		) AS f ORDER BY source_file COLLATE "C", source_line`, tid, want)
	if err != nil {
		return fmt.Errorf("ledger: failures: %w", err)
	}
	defer rows.Close()
	var email, typ, cid []byte
	var f ledger.Failure
	for rows.Next() {
		if err := rows.Scan(&email, &typ, &cid, &f.Status, &f.Reason, &f.SourceFile, &f.SourceLine); err != nil {
			return fmt.Errorf("ledger: failures: %w", err)
		}
		f.Email, f.Type, f.CustomerID = string(email), string(typ), string(cid)
		if f.Status == row.InFlight {
			f.Status = row.InDoubt
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: failures: %w", err)
	}
	return nil
}
