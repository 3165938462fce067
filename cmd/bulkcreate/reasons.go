package main

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	_ "github.com/mattn/go-sqlite3" // the driver the ledger registers; named here for the read-only queries below

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// reason is one cause of rows not done, and how many rows it holds.
type reason struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

const (
	// maxReasonLen keeps a reason to one line of a summary: server
	// messages can carry a whole HTML error page.
	maxReasonLen = 120
	// topReasons is how many reasons a summary lists.
	topReasons = 5
)

// shortReason is msg on one line of at most maxReasonLen characters.
func shortReason(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if msg == "" {
		return "(no message)"
	}
	if utf8.RuneCountInString(msg) <= maxReasonLen {
		return msg
	}
	r := []rune(msg)
	return string(r[:maxReasonLen-1]) + "…"
}

// groupReasons merges rs by status and shortened reason, most rows first.
func groupReasons(rs []reason) []reason {
	type key struct{ status, reason string }
	n := map[key]int64{}
	for _, r := range rs {
		n[key{r.Status, shortReason(r.Reason)}] += r.Count
	}
	out := make([]reason, 0, len(n))
	for k, c := range n {
		out = append(out, reason{Status: k.status, Reason: k.reason, Count: c})
	}
	slices.SortFunc(out, func(a, b reason) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Status, b.Status), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// printReasons ends a summary with the top reasons rows were not done,
// as "298 failed: connection refused …".
func printReasons(w io.Writer, rs []reason) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w, "why rows were not done:")
	for i, r := range rs {
		if i == topReasons && len(rs) > topReasons+1 { // a line for one reason is as short as a line that counts them
			var rows int64
			for _, r := range rs[i:] {
				rows += r.Count
			}
			fmt.Fprintf(w, "  … and %s for %d other reasons\n", plural(rows, "row"), len(rs)-i)
			break
		}
		fmt.Fprintf(w, "  %d %s: %s\n", r.Count, strings.ReplaceAll(r.Status, "_", " "), r.Reason)
	}
}

// finishedRun is what the ledger recorded of the import that just ended.
type finishedRun struct {
	ID      int64
	Reasons []reason // this run's rows not done, grouped
}

// lastRun finds the run an import on target, started at since or later,
// just recorded, and the reasons of its rows not done; none when the import
// stopped before recording one. The ledger's lock on the target keeps other
// imports from starting a run between ours and this look. Errors are left
// out: the summary is complete without them.
//
// The ledger's API has no per-run view, so this reads its tables as the
// README's sqlite3 examples do, on a read-only connection of its own, and
// through its indexes: it runs at the end of every import, whatever the
// ledger's size.
func lastRun(ctx context.Context, l *ledger.Ledger, target, sourceFile string, since time.Time) finishedRun {
	if l == nil {
		return finishedRun{}
	}
	// An interrupted run still gets its summary.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	db, err := sql.Open("sqlite3", readOnlyDSN(l.Path()))
	if err != nil {
		return finishedRun{}
	}
	defer db.Close()
	var (
		run              finishedRun
		file, started, o string
	)
	err = db.QueryRowContext(ctx, `
		SELECT r.id, r.source_file, r.started_at, r.outcome FROM runs r JOIN targets t ON t.id = r.target_id
		WHERE t.name = ? ORDER BY r.id DESC LIMIT 1`, target).Scan(&run.ID, &file, &started, &o)
	if err != nil || file != sourceFile || o == "running" {
		return finishedRun{}
	}
	if t, err := time.Parse(time.RFC3339Nano, started); err != nil || t.Before(since) {
		return finishedRun{} // another's run: this one never started
	}
	run.Reasons, _ = runReasons(ctx, db, run.ID)
	return run
}

// fleetRun is what a PostgreSQL ledger recorded of run runID, which a
// fleet import just ended or queued: its id, and the reasons of its rows
// not done whichever process sent them. Errors are left out, as lastRun's.
func fleetRun(ctx context.Context, l *postgres.Ledger, runID int64) finishedRun {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	run := finishedRun{ID: runID}
	rs, err := l.RunReasons(ctx, runID)
	if err != nil {
		return run
	}
	for _, r := range rs {
		run.Reasons = append(run.Reasons, reason{Status: r.Status, Reason: r.Reason, Count: r.Count})
	}
	run.Reasons = groupReasons(run.Reasons)
	return run
}

// runReasons reads the messages of the rows run left not done. A line
// issue's reason starts with its file and line, which would make every
// reason its own group: they go.
func runReasons(ctx context.Context, db *sql.DB, runID int64) ([]reason, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT status, error_message, COUNT(*) FROM rows
			WHERE target_id = (SELECT target_id FROM runs WHERE id = ?1)
				AND status IN ('rejected', 'failed', 'in_doubt', 'in_flight') AND last_run = ?1
			GROUP BY status, error_message
		UNION ALL
		SELECT status, reason, COUNT(*) FROM (
			SELECT status, CASE
				WHEN substr(reason, 1, length(source_file) + length(source_line) + 3) = source_file || ':' || source_line || ': '
				THEN substr(reason, length(source_file) + length(source_line) + 4)
				ELSE reason END AS reason
			FROM line_issues WHERE target_id = (SELECT target_id FROM runs WHERE id = ?1) AND run_id = ?1)
		GROUP BY status, reason`, runID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []reason
	for rows.Next() {
		var r reason
		if err := rows.Scan(&r.Status, &r.Reason, &r.Count); err != nil {
			return nil, err
		}
		if r.Status == string(row.InFlight) {
			r.Status = string(row.InDoubt)
		}
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return groupReasons(rs), nil
}

// readOnlyDSN opens the ledger file for reading only, waiting out a writer.
func readOnlyDSN(path string) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	if strings.HasPrefix(p, "/") {
		p = "file://" + p
	} else {
		p = "file:" + p
	}
	return p + "?mode=ro&_busy_timeout=5000"
}
