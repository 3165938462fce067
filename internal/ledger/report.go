package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Report is the state of one target.
type Report struct {
	Target string             `json:"target"`
	Rows   int                `json:"rows"`
	Counts map[row.Status]int `json:"counts"` // every reported status, zeros included
	Runs   []RunRecord        `json:"runs"`   // newest first
}

// RunRecord is one recorded run.
type RunRecord struct {
	ID         int64           `json:"id"`
	SourceFile string          `json:"file"`
	StartedAt  string          `json:"startedAt"`
	EndedAt    string          `json:"endedAt,omitempty"`
	Outcome    string          `json:"outcome"`
	Counts     map[string]int  `json:"counts"`
	Options    json.RawMessage `json:"options"`
	// StoppedBy is why a fleet import was stopped before its rows were all
	// sent (its --max-errors limit reached); "" otherwise.
	StoppedBy string `json:"stoppedBy,omitempty"`
}

// Report counts the target's rows per status (rows in flight count as
// in_doubt) and lists its last maxRuns runs. A target the ledger has never
// seen reports zeros.
func (l *Ledger) Report(ctx context.Context, target string, maxRuns int) (Report, error) {
	rep := Report{Target: target, Counts: make(map[row.Status]int, len(row.Statuses)), Runs: []RunRecord{}}
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
	rows, err := l.db.QueryContext(ctx, `
		SELECT status, COUNT(*) FROM rows WHERE target_id = ? GROUP BY status
		UNION ALL
		SELECT status, COUNT(*) FROM line_issues WHERE target_id = ? GROUP BY status`, tid, tid)
	if err != nil {
		return rep, fmt.Errorf("ledger: report: %w", classifySQLite(err))
	}
	for rows.Next() {
		var s row.Status
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return rep, fmt.Errorf("ledger: report: %w", err)
		}
		if s == row.InFlight {
			s = row.InDoubt
		}
		rep.Counts[s] += n
		rep.Rows += n
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return rep, fmt.Errorf("ledger: report: %w", classifySQLite(err))
	}
	if err := rows.Close(); err != nil {
		return rep, fmt.Errorf("ledger: report: %w", err)
	}
	rrows, err := l.db.QueryContext(ctx, `SELECT id, source_file, started_at, COALESCE(ended_at, ''), outcome, counts, options,
			COALESCE(pid, 0), COALESCE(host, '')
		FROM runs WHERE target_id = ? ORDER BY id DESC LIMIT ?`, tid, maxRuns)
	if err != nil {
		return rep, fmt.Errorf("ledger: report: %w", classifySQLite(err))
	}
	defer rrows.Close()
	for rrows.Next() {
		var rr RunRecord
		var counts, opts, host string
		var pid int
		if err := rrows.Scan(&rr.ID, &rr.SourceFile, &rr.StartedAt, &rr.EndedAt, &rr.Outcome, &counts, &opts, &pid, &host); err != nil {
			return rep, fmt.Errorf("ledger: report: %w", err)
		}
		if rr.Outcome == "running" && deadHere(pid, host) {
			// The next import records it so; report says it now, rather
			// than show a run that ended (a kill, a second Ctrl-C) as live.
			rr.Outcome = "crashed"
		}
		_ = json.Unmarshal([]byte(counts), &rr.Counts)
		rr.Options = json.RawMessage(opts)
		rep.Runs = append(rep.Runs, rr)
	}
	return rep, rrows.Err()
}

// deadHere reports whether a run by process pid on host has ended without
// finishing: only a process of this machine can be asked.
func deadHere(pid int, host string) bool {
	if me, err := os.Hostname(); err != nil || host != me || pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// Failure is a row that is neither created nor existing.
type Failure struct {
	Email      string
	Type       string
	CustomerID string
	Status     row.Status
	Reason     string
	SourceFile string
	SourceLine int
}

// Digest names f's content as LineIssue.Digest does; for a line issue,
// the two agree.
func (f Failure) Digest() string {
	return IssueDigest(f.Status, f.Email, f.Type, f.CustomerID, f.Reason)
}

// Failures calls fn for every row of target whose status is in statuses
// (all not-done statuses when empty), ordered by file and line.
func (l *Ledger) Failures(ctx context.Context, target string, statuses []row.Status, fn func(Failure) error) error {
	if len(statuses) == 0 {
		statuses = []row.Status{row.Invalid, row.Duplicate, row.Rejected, row.Failed, row.InDoubt}
	}
	want := map[row.Status]bool{}
	for _, s := range statuses {
		want[s] = true
		if s == row.InDoubt {
			want[row.InFlight] = true
		}
	}
	tid, ok, err := l.targetID(ctx, target, false)
	if err != nil {
		return fmt.Errorf("ledger: failures: %w", err)
	}
	if !ok {
		return nil
	}
	var ph []string
	args := []any{tid}
	for s := range want {
		ph = append(ph, "?")
		args = append(args, s)
	}
	in := strings.Join(ph, ",")
	args = append(args, tid)
	args = append(args, args[1:len(ph)+1]...)
	rows, err := l.db.QueryContext(ctx, `
		SELECT email, type, customer_id_sent, status, error_message, source_file, source_line
			FROM rows WHERE target_id = ? AND status IN (`+in+`)
		UNION ALL
		SELECT email, type, customer_id, status, reason, source_file, source_line
			FROM line_issues WHERE target_id = ? AND status IN (`+in+`)
		ORDER BY 6, 7`, args...)
	if err != nil {
		return fmt.Errorf("ledger: failures: %w", classifySQLite(err))
	}
	defer rows.Close()
	for rows.Next() {
		var f Failure
		if err := rows.Scan(&f.Email, &f.Type, &f.CustomerID, &f.Status, &f.Reason, &f.SourceFile, &f.SourceLine); err != nil {
			return fmt.Errorf("ledger: failures: %w", err)
		}
		if f.Status == row.InFlight {
			f.Status = row.InDoubt
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return rows.Err()
}
