package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LiveImport is an import of a target that has not ended: loading, or
// loaded with rows left for workers.
type LiveImport struct {
	RunID      int64  `json:"runId"`
	SourceFile string `json:"file"`
	StartedAt  string `json:"startedAt"`
	Loaded     bool   `json:"loaded"` // every row is queued
	Left       int    `json:"rowsLeft"`
}

// LiveWorker is a process that claims chunks of a target and has not said
// it stopped. Silent: no heartbeat came for a whole lease, so it died or
// was cut off from the database, and its chunks are free for others; its
// Rate is then 0 and Requests its count at its last heartbeat.
type LiveWorker struct {
	ID        int64   `json:"id"`
	Host      string  `json:"host"`
	PID       int     `json:"pid"`
	StartedAt string  `json:"startedAt"`
	LastSeen  string  `json:"lastSeen"`
	Requests  int64   `json:"requests"`
	Rate      float64 `json:"rate"` // create requests a second, over its last heartbeat
	Silent    bool    `json:"silent,omitempty"`
}

// workerForgotten is how long report lists a worker after its last
// heartbeat, as silent once a lease has passed: long enough to show that
// it died.
const workerForgotten = 10 * time.Minute

// Live lists the target's imports not ended that are loaded, loading or
// owed work (not one whose loader died once none of its chunks was open:
// the next import marks it crashed), and its workers not stopped, oldest
// first.
func (l *Ledger) Live(ctx context.Context, target string) ([]LiveImport, []LiveWorker, error) {
	tid, ok, err := l.targetID(ctx, target, false)
	if err != nil || !ok {
		return nil, nil, err
	}
	rows, err := l.pool.Query(ctx, `SELECT r.id, r.source_file, r.started_at, r.loaded_at IS NOT NULL,
			(SELECT COUNT(*) FROM rows x JOIN chunks c ON c.id = x.chunk_id
				WHERE c.run_id = r.id AND NOT c.done AND x.status IN ('queued', 'in_flight', 'in_doubt'))
		FROM runs r WHERE r.target_id = $1 AND r.outcome = 'running' AND (r.loaded_at IS NOT NULL OR `+loadingRun+`
			OR EXISTS (SELECT 1 FROM chunks c WHERE c.run_id = r.id AND NOT c.done)) ORDER BY r.id`, tid)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: live imports: %w", err)
	}
	var imports []LiveImport
	var li LiveImport
	var started time.Time
	if _, err := pgx.ForEachRow(rows, []any{&li.RunID, &li.SourceFile, &started, &li.Loaded, &li.Left}, func() error {
		li.StartedAt = stamp(started)
		imports = append(imports, li)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("ledger: live imports: %w", err)
	}
	rows, err = l.pool.Query(ctx, `SELECT id, host, pid, started_at, last_seen, requests, rate,
			last_seen < now() - make_interval(secs => lease_seconds) FROM workers
		WHERE target_id = $1 AND stopped_at IS NULL AND last_seen > now() - make_interval(secs => $2) ORDER BY id`,
		tid, workerForgotten.Seconds())
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: workers: %w", err)
	}
	var workers []LiveWorker
	var lw LiveWorker
	var seen time.Time
	if _, err := pgx.ForEachRow(rows, []any{&lw.ID, &lw.Host, &lw.PID, &started, &seen, &lw.Requests, &lw.Rate, &lw.Silent}, func() error {
		lw.StartedAt, lw.LastSeen = stamp(started), stamp(seen)
		if lw.Silent {
			lw.Rate = 0
		}
		workers = append(workers, lw)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("ledger: workers: %w", err)
	}
	return imports, workers, nil
}

// ImportTargets names the targets an import was ever started on, the one
// whose last import started last first. It reads, and so creates no
// target: a worker asks it before it registers, to tell a target that has
// no import from one whose imports are done.
func (l *Ledger) ImportTargets(ctx context.Context) ([]string, error) {
	rows, err := l.pool.Query(ctx, `SELECT t.name FROM targets t JOIN runs r ON r.target_id = t.id
		GROUP BY t.id, t.name ORDER BY max(r.id) DESC`)
	if err != nil {
		return nil, fmt.Errorf("ledger: import targets: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("ledger: import targets: %w", err)
	}
	return names, nil
}

// RunReason is a cause of rows a run left not done, and how many rows it
// holds.
type RunReason struct {
	Status, Reason string
	Count          int64
}

// RunReasons returns the messages of the rows runID left not done
// (rejected, failed, in doubt; a row still in flight counts in doubt),
// whichever process recorded them, and the reasons of its line issues
// with their file and line taken off, counted by status and message.
func (l *Ledger) RunReasons(ctx context.Context, runID int64) ([]RunReason, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT CASE WHEN status = 'in_flight' THEN 'in_doubt' ELSE status END, COALESCE(error_message, ''), COUNT(*) FROM rows
			WHERE target_id = (SELECT target_id FROM runs WHERE id = $1)
				AND status IN ('rejected', 'failed', 'in_doubt', 'in_flight') AND last_run = $1
			GROUP BY 1, 2
		UNION ALL
		SELECT status, CASE WHEN left(reason, length(source_file) + length(source_line::text) + 3) = source_file || ':' || source_line || ': '
				THEN substr(reason, length(source_file) + length(source_line::text) + 4) ELSE reason END, COUNT(*)
			FROM line_issues WHERE target_id = (SELECT target_id FROM runs WHERE id = $1) AND run_id = $1
			GROUP BY 1, 2`, runID)
	if err != nil {
		return nil, fmt.Errorf("ledger: run reasons: %w", err)
	}
	var out []RunReason
	var r RunReason
	if _, err := pgx.ForEachRow(rows, []any{&r.Status, &r.Reason, &r.Count}, func() error {
		out = append(out, r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("ledger: run reasons: %w", err)
	}
	return out, nil
}
