package ledger

import (
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/row"
)

func TestReport_JSONShape(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "customers.csv")
	mark(t, r, sendFor("k1", "customers.csv", 2))
	record(t, r, Outcome{Key: "k1", Status: Created, CustomerID: "srv-1"})
	mark(t, r, sendFor("k2", "customers.csv", 3)) // in flight: counted in_doubt
	if err := r.RecordLineIssue(t.Context(), LineIssue{SourceFile: "customers.csv", SourceLine: 4, Status: Duplicate, Reason: "repeats line 2"}); err != nil {
		t.Fatalf("RecordLineIssue() = %v", err)
	}
	flush(t, r)

	tests := []struct {
		name       string
		target     string
		wantRows   float64
		wantCounts map[string]float64
		wantRuns   int
	}{
		{"Known", targetA, 3, map[string]float64{"created": 1, "exists": 0, "invalid": 0, "duplicate": 1, "rejected": 0, "failed": 0, "in_doubt": 1}, 1},
		{"Unknown", targetB, 0, map[string]float64{"created": 0, "exists": 0, "invalid": 0, "duplicate": 0, "rejected": 0, "failed": 0, "in_doubt": 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, err := json.Marshal(report(t, l, tt.target))
			if err != nil {
				t.Fatalf("json.Marshal(Report) = %v", err)
			}
			// Decoded into plain maps, so that a wrong tag shows.
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("json.Unmarshal(%s) = %v", data, err)
			}
			if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, []string{"counts", "rows", "runs", "target"}) {
				t.Errorf("Report JSON keys = %v, want [counts rows runs target]; JSON %s", keys, data)
			}
			if got["target"] != tt.target || got["rows"] != tt.wantRows {
				t.Errorf("Report JSON target, rows = %v, %v, want %v, %v", got["target"], got["rows"], tt.target, tt.wantRows)
			}
			gotCounts, _ := got["counts"].(map[string]any)
			wantCounts := map[string]any{}
			for k, v := range tt.wantCounts {
				wantCounts[k] = v
			}
			if !maps.Equal(gotCounts, wantCounts) {
				t.Errorf("Report JSON counts = %v, want %v", gotCounts, wantCounts)
			}
			runs, ok := got["runs"].([]any)
			if !ok || len(runs) != tt.wantRuns {
				t.Fatalf("Report JSON runs = %v, want a list of %d", got["runs"], tt.wantRuns)
			}
			if tt.wantRuns > 0 {
				run := runs[0].(map[string]any)
				for _, k := range []string{"id", "file", "startedAt", "outcome", "counts", "options"} {
					if _, ok := run[k]; !ok {
						t.Errorf("Report JSON runs[0] = %v, want key %q", run, k)
					}
				}
				if run["file"] != "customers.csv" || run["outcome"] != "running" {
					t.Errorf("Report JSON runs[0] file, outcome = %v, %v, want customers.csv, running", run["file"], run["outcome"])
				}
			}
		})
	}
}

func TestReport_ListsRunsNewestFirst(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	var ids []int64
	for i := range 3 {
		r := startRun(t, l, targetA, fmt.Sprintf("f%d.csv", i))
		ids = append(ids, r.ID)
		finish(t, r, RunEnd{Outcome: "completed", Counts: row.Counts{Created: int64(i)}})
	}
	rep, err := l.Report(t.Context(), targetA, 2)
	if err != nil {
		t.Fatalf("Report(A, 2) = %v", err)
	}
	if len(rep.Runs) != 2 || rep.Runs[0].ID != ids[2] || rep.Runs[1].ID != ids[1] {
		t.Fatalf("Report(A, 2).Runs = %+v, want runs %d, %d", rep.Runs, ids[2], ids[1])
	}
	got := rep.Runs[0]
	if got.Outcome != "completed" || got.EndedAt == "" || got.Counts["created"] != 2 || string(got.Options) != `{"concurrency":4}` {
		t.Errorf("Report(A, 2).Runs[0] = %+v, want completed, ended, 2 created, options recorded", got)
	}
}

func TestFailures_OrderAndFilter(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "b.csv")
	// Written out of file order, keyed rows and line issues mixed.
	rows := []struct {
		file string
		line int
		st   Status
	}{
		{"b.csv", 9, Failed},
		{"b.csv", 2, Created},
		{"a.csv", 7, Rejected},
		{"b.csv", 4, InFlight},
		{"a.csv", 3, InDoubt},
		{"b.csv", 5, Exists},
	}
	for _, row := range rows {
		k := fmt.Sprintf("%s-%d", row.file, row.line)
		mark(t, r, sendFor(k, row.file, row.line))
		if row.st != InFlight {
			record(t, r, Outcome{Key: k, Status: row.st, Message: string(row.st)})
		}
	}
	for _, li := range []LineIssue{
		{SourceFile: "b.csv", SourceLine: 3, Status: Invalid, Reason: "invalid"},
		{SourceFile: "a.csv", SourceLine: 5, Status: Duplicate, Reason: "duplicate"},
		{SourceFile: "a.csv", SourceLine: 1, Status: Invalid, Reason: "invalid"},
	} {
		if err := r.RecordLineIssue(t.Context(), li); err != nil {
			t.Fatalf("RecordLineIssue(%+v) = %v", li, err)
		}
	}
	flush(t, r)

	tests := []struct {
		name     string
		statuses []Status
		want     []string // file:line status
	}{
		{"All", nil, []string{"a.csv:1 invalid", "a.csv:3 in_doubt", "a.csv:5 duplicate", "a.csv:7 rejected",
			"b.csv:3 invalid", "b.csv:4 in_doubt", "b.csv:9 failed"}},
		{"InDoubtIncludesInFlight", []Status{InDoubt}, []string{"a.csv:3 in_doubt", "b.csv:4 in_doubt"}},
		{"LineIssuesOnly", []Status{Invalid}, []string{"a.csv:1 invalid", "b.csv:3 invalid"}},
		{"Several", []Status{Failed, Rejected, Duplicate}, []string{"a.csv:5 duplicate", "a.csv:7 rejected", "b.csv:9 failed"}},
		{"Done", []Status{Created}, []string{"b.csv:2 created"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, f := range failures(t, l, targetA, tt.statuses...) {
				got = append(got, fmt.Sprintf("%s:%d %s", f.SourceFile, f.SourceLine, f.Status))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Failures(%v) = %q, want %q", tt.statuses, got, tt.want)
			}
		})
	}
}

func TestFailures_StopsOnCallbackError(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "f.csv")
	for i := range 3 {
		k := fmt.Sprint(i)
		mark(t, r, sendFor(k, "f.csv", i+2))
		record(t, r, Outcome{Key: k, Status: Failed})
	}
	flush(t, r)
	stop := fmt.Errorf("stop")
	calls := 0
	err := l.Failures(t.Context(), targetA, nil, func(Failure) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("Failures(fn failing) = %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// TestReport_DeadRunCountsItsRows: a run that died wrote no counts; the
// next StartRun counts the rows it wrote last, before later runs write them
// again.
func TestReport_DeadRunCountsItsRows(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "f.csv")
	for i, k := range []string{"a", "b", "c"} {
		mark(t, r, sendFor(k, "f.csv", i+2))
	}
	record(t, r, Outcome{Key: "a", Status: Created})
	record(t, r, Outcome{Key: "b", Status: Created})
	flush(t, r)
	dead := r.ID
	r.unlock() // the process dies; c stays in flight

	next := startRun(t, l, targetA, "f.csv")
	mark(t, next, sendFor("c", "f.csv", 4)) // in doubt: sent again
	record(t, next, Outcome{Key: "c", Status: Exists})
	finish(t, next, RunEnd{Outcome: "completed", Counts: row.Counts{Skipped: 2, Exists: 1}})
	rep := report(t, l, targetA)
	for _, rr := range rep.Runs {
		if rr.ID != dead {
			continue
		}
		if rr.Outcome != "crashed" || rr.Counts["created"] != 2 || rr.Counts["in_doubt"] != 1 {
			t.Errorf("dead run in the report: %s, counts %v; want crashed, 2 created, 1 in_doubt", rr.Outcome, rr.Counts)
		}
		return
	}
	t.Errorf("report lists no run %d: %+v", dead, rep.Runs)
}

// TestReport_DeadRunDoesNotCountRowsItReleased: a row a run marked and
// put back (nothing was sent) is the earlier run's again, so the counts
// of the run, should it die, leave it out.
func TestReport_DeadRunDoesNotCountRowsItReleased(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	first, prior := failedEarlier(t, l, "a")

	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("a", "f.csv", 2))
	mark(t, r, sendFor("b", "f.csv", 3))
	if err := r.Release(t.Context(), "a", &prior); err != nil {
		t.Fatal(err)
	}
	record(t, r, Outcome{Key: "b", Status: Created})
	flush(t, r)
	dead := r.ID
	r.unlock() // the process dies

	startRun(t, l, targetA, "f.csv")
	if got := lookup(t, l, targetA, "a")["a"]; got.LastRun != first.ID || got.Status != Failed {
		t.Errorf("a after the release = %+v, want failed, last written by run %d", got, first.ID)
	}
	for _, rr := range report(t, l, targetA).Runs {
		if rr.ID == dead {
			if len(rr.Counts) != 1 || rr.Counts["created"] != 1 {
				t.Errorf("dead run's counts = %v, want created 1 alone (a was released)", rr.Counts)
			}
			return
		}
	}
	t.Errorf("report lists no run %d", dead)
}

// TestReport_ARunWhoseProcessIsGoneIsNotRunning: a run whose process died
// (a kill, a second Ctrl-C) shows as crashed at once, not as running until
// the next import.
func TestReport_ARunWhoseProcessIsGoneIsNotRunning(t *testing.T) {
	t.Parallel()
	l := openLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
	r := startRun(t, l, targetA, "a.csv")
	defer finish(t, r, RunEnd{})
	if got := report(t, l, targetA).Runs[0].Outcome; got != "running" {
		t.Fatalf("a live run's outcome = %q, want running", got)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("no true(1) to get a finished process's id: %v", err)
	}
	if _, err := l.db.ExecContext(t.Context(), `UPDATE runs SET pid = ? WHERE id = ?`, gone.Process.Pid, r.ID); err != nil {
		t.Fatal(err)
	}
	if got := report(t, l, targetA).Runs[0].Outcome; got != "crashed" {
		t.Errorf("outcome of a run whose process is gone = %q, want crashed", got)
	}
}
