package postgres

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestRun_MarkInFlightThenRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		outcome       Outcome
		wantID        string // customer_id kept
		wantFailure   bool   // listed by Failures
		wantReportKey Status
	}{
		{"Created", Outcome{Status: Created, CustomerID: "srv-1", HTTPStatus: 201}, "srv-1", false, Created},
		{"Exists", Outcome{Status: Exists, HTTPStatus: 409, ErrorCode: 1001}, "", false, Exists},
		{"Rejected", Outcome{Status: Rejected, HTTPStatus: 422, ErrorCode: 2002, Message: "email: invalid"}, "", true, Rejected},
		{"Failed", Outcome{Status: Failed, HTTPStatus: 503, Message: "unavailable"}, "", true, Failed},
		{"InDoubt", Outcome{Status: InDoubt, Message: "timeout after the request was sent"}, "", true, InDoubt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(t)
			r := startRun(t, l, targetA, "customers.csv")
			s := sendFor("k1", "customers.csv", 2)
			mark(t, r, s)

			got := lookup(t, l, targetA, "k1")["k1"]
			want := Prior{Status: InFlight, Email: s.Email, Type: s.Type, CustomerIDSent: s.CustomerID,
				Fingerprint: s.Fingerprint, SourceFile: s.SourceFile, SourceLine: s.SourceLine, Attempts: 1, LastRun: r.ID}
			if got != want {
				t.Fatalf("Lookup(k1) after MarkInFlight = %+v, want %+v", got, want)
			}

			o := tt.outcome
			o.Key = "k1"
			record(t, r, o)
			flush(t, r)
			want.Status, want.CustomerID, want.Message = tt.outcome.Status, tt.wantID, tt.outcome.Message
			if got := lookup(t, l, targetA, "k1")["k1"]; got != want {
				t.Errorf("Lookup(k1) after Record = %+v, want %+v", got, want)
			}
			if got, want := counts(report(t, l, targetA)), map[Status]int{tt.wantReportKey: 1}; !maps.Equal(got, want) {
				t.Errorf("Report().Counts = %v, want %v", got, want)
			}
			fs := failures(t, l, targetA)
			if got := len(fs) == 1; got != tt.wantFailure {
				t.Fatalf("Failures() = %+v, want listed %v", fs, tt.wantFailure)
			}
			if tt.wantFailure {
				want := Failure{Email: s.Email, Type: s.Type, CustomerID: s.CustomerID, Status: tt.outcome.Status,
					Reason: tt.outcome.Message, SourceFile: "customers.csv", SourceLine: 2}
				if fs[0] != want {
					t.Errorf("Failures()[0] = %+v, want %+v", fs[0], want)
				}
			}
		})
	}
}

// TestRun_MarkInFlightBatch marks new and known rows in one write, then
// records them, retries one and releases one: each row ends as its own
// calls say, whichever way Record and Release find it.
func TestRun_MarkInFlightBatch(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	old := startRun(t, l, targetA, "old.csv")
	mark(t, old, sendFor("known", "old.csv", 2))
	record(t, old, Outcome{Key: "known", Status: Failed, HTTPStatus: 503, Message: "unavailable"})
	finish(t, old, RunEnd{})

	r := startRun(t, l, targetA, "new.csv")
	keys := []string{"a", "known", "b", "c", "released"}
	var sends []Send
	for i, k := range keys {
		sends = append(sends, sendFor(k, "new.csv", i+2))
	}
	if err := r.MarkInFlightBatch(t.Context(), sends); err != nil {
		t.Fatalf("MarkInFlightBatch() = %v", err)
	}
	for k, p := range lookup(t, l, targetA, keys...) {
		if p.Status != InFlight || p.SourceFile != "new.csv" {
			t.Errorf("Lookup(%s) after MarkInFlightBatch = %+v, want in_flight from new.csv", k, p)
		}
	}
	mark(t, r, sendFor("b", "new.csv", 4)) // a second attempt
	record(t, r, Outcome{Key: "a", Status: Created, CustomerID: "srv-a", HTTPStatus: 201})
	record(t, r, Outcome{Key: "known", Status: Exists, HTTPStatus: 409})
	record(t, r, Outcome{Key: "b", Status: InDoubt, Message: "timeout"})
	record(t, r, Outcome{Key: "c", Status: Rejected, HTTPStatus: 422, Message: "bad"})
	if err := r.Release(t.Context(), "released", nil); err != nil {
		t.Fatalf("Release(released) = %v", err)
	}
	flush(t, r)

	got := lookup(t, l, targetA, keys...)
	want := map[string]struct {
		status   Status
		attempts int
		id       string
	}{
		"a":     {Created, 1, "srv-a"},
		"known": {Exists, 2, ""},
		"b":     {InDoubt, 2, ""},
		"c":     {Rejected, 1, ""},
	}
	if len(got) != len(want) {
		t.Errorf("Lookup() found %d rows, want %d (released gone): %v", len(got), len(want), got)
	}
	for k, w := range want {
		if p := got[k]; p.Status != w.status || p.Attempts != w.attempts || p.CustomerID != w.id {
			t.Errorf("Lookup(%s) = %+v, want %s after %d attempts, customer %q", k, p, w.status, w.attempts, w.id)
		}
	}
}

func TestRun_MarkInFlightCountsAttempts(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	for run := 1; run <= 3; run++ {
		r := startRun(t, l, targetA, "customers.csv")
		s := sendFor("k1", "customers.csv", run+1) // the row moved in the file
		s.Fingerprint = fmt.Sprint("fp-", run)
		mark(t, r, s)
		record(t, r, Outcome{Key: "k1", Status: Failed, HTTPStatus: 503})
		finish(t, r, RunEnd{})

		got := lookup(t, l, targetA, "k1")["k1"]
		if got.Attempts != run || got.Status != Failed || got.SourceLine != run+1 || got.Fingerprint != s.Fingerprint {
			t.Errorf("run %d: Lookup(k1) = %+v, want failed, %d attempts, line %d, fingerprint %s",
				run, got, run, run+1, s.Fingerprint)
		}
	}
}

func TestRun_ReleaseRestoresPrior(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		prior *Outcome // recorded by an earlier run; nil: the row is new
	}{
		{"New", nil},
		{"Failed", &Outcome{Status: Failed, HTTPStatus: 503, Message: "unavailable"}},
		{"Rejected", &Outcome{Status: Rejected, HTTPStatus: 422, ErrorCode: 7, Message: "bad email"}},
		{"InDoubt", &Outcome{Status: InDoubt, Message: "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(t)
			var prior *Prior
			if tt.prior != nil {
				r := startRun(t, l, targetA, "old.csv")
				mark(t, r, sendFor("k1", "old.csv", 9))
				o := *tt.prior
				o.Key = "k1"
				record(t, r, o)
				finish(t, r, RunEnd{})
				p := lookup(t, l, targetA, "k1")["k1"]
				prior = &p
			}

			r := startRun(t, l, targetA, "new.csv")
			changed := sendFor("k1", "new.csv", 3)
			changed.Email, changed.Fingerprint = "changed@example.com", "fp-changed"
			mark(t, r, changed)
			if err := r.Release(t.Context(), "k1", prior); err != nil {
				t.Fatalf("Release(k1) = %v", err)
			}
			flush(t, r)

			got, ok := lookup(t, l, targetA, "k1")["k1"]
			if prior == nil {
				if ok {
					t.Errorf("Lookup(k1) after Release of a new row = %+v, want no row", got)
				}
				return
			}
			// All of it, attempts too: nothing was sent.
			if got != *prior {
				t.Errorf("Lookup(k1) after Release = %+v, want %+v", got, *prior)
			}
		})
	}
}

func TestRun_ReleaseLeavesRecordedRow(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "customers.csv")
	mark(t, r, sendFor("k1", "customers.csv", 2))
	record(t, r, Outcome{Key: "k1", Status: Created, CustomerID: "srv-1"})
	if err := r.Release(t.Context(), "k1", nil); err != nil {
		t.Fatalf("Release(k1) = %v", err)
	}
	flush(t, r)
	if got := lookup(t, l, targetA, "k1")["k1"].Status; got != Created {
		t.Errorf("Lookup(k1).Status after a late Release = %q, want %q", got, Created)
	}
}

func TestStartRun_RecoversRowsLeftInFlight(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	dead := startRun(t, l, targetA, "customers.csv")
	for i, k := range []string{"a", "b", "c"} {
		mark(t, dead, sendFor(k, "customers.csv", i+2))
	}
	record(t, dead, Outcome{Key: "b", Status: Created, CustomerID: "srv-b"})
	other := startRun(t, l, targetB, "customers.csv")
	mark(t, other, sendFor("z", "customers.csv", 2))
	flush(t, dead)

	// Before the next run, report shows the rows in flight as in_doubt.
	if got, want := counts(report(t, l, targetA)), map[Status]int{Created: 1, InDoubt: 2}; !maps.Equal(got, want) {
		t.Errorf("Report(A).Counts with rows in flight = %v, want %v", got, want)
	}
	if got := failures(t, l, targetA, InDoubt); len(got) != 2 || got[0].Status != InDoubt {
		t.Errorf("Failures(A, in_doubt) = %+v, want a and c as in_doubt", got)
	}

	// The process dies: its runs end without Finish, and their locks go.
	dead.unlock()
	next := startRun(t, l, targetA, "customers.csv")
	if next.Recovered != 2 {
		t.Errorf("StartRun(A).Recovered = %d, want 2", next.Recovered)
	}
	got := lookup(t, l, targetA, "a", "b", "c")
	for k, want := range map[string]Status{"a": InDoubt, "b": Created, "c": InDoubt} {
		if got[k].Status != want {
			t.Errorf("Lookup(%s).Status after recovery = %q, want %q", k, got[k].Status, want)
		}
	}
	if got := lookup(t, l, targetB, "z")["z"].Status; got != InFlight {
		t.Errorf("Lookup(B, z).Status = %q, want %q: recovery on A must leave B alone", got, InFlight)
	}

	runs := report(t, l, targetA).Runs
	if len(runs) != 2 || runs[0].ID != next.ID || runs[0].Outcome != "running" || runs[1].ID != dead.ID || runs[1].Outcome != "crashed" {
		t.Errorf("Report(A).Runs = %+v, want the new run running, then run %d crashed", runs, dead.ID)
	}
	if got := report(t, l, targetB).Runs[0].Outcome; got != "running" {
		t.Errorf("Report(B).Runs[0].Outcome = %q, want running: B's run is alive", got)
	}
}

func TestLedgerClose_LeavesUnfinishedRunForRecovery(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	l, err := Open(t.Context(), url, Options{Schema: schema})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("a", "f.csv", 2))
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	l = openLedger(t, url, schema)
	next := startRun(t, l, targetA, "f.csv") // not ErrBusy: Close let the lock go
	if next.Recovered != 1 {
		t.Errorf("StartRun().Recovered = %d, want 1", next.Recovered)
	}
}

func TestRun_LineIssues(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	issue := func(file string, line int, st Status, reason string) LineIssue {
		return LineIssue{SourceFile: file, SourceLine: line, Status: st, Email: "x@example.com", Type: "individual", Reason: reason}
	}
	r1 := startRun(t, l, targetA, "a.csv")
	for _, li := range []LineIssue{
		issue("a.csv", 3, Invalid, "email: missing @"),
		issue("a.csv", 3, Duplicate, "repeats line 2"), // replaces line 3
		issue("a.csv", 5, Invalid, "type: unknown"),
		issue("b.csv", 3, Invalid, "email: empty"),
	} {
		if err := r1.RecordLineIssue(t.Context(), li); err != nil {
			t.Fatalf("RecordLineIssue(%+v) = %v", li, err)
		}
	}
	finish(t, r1, RunEnd{ReadWholeFile: true, SourceFile: "a.csv"})
	if got, want := counts(report(t, l, targetA)), map[Status]int{Invalid: 2, Duplicate: 1}; !maps.Equal(got, want) {
		t.Errorf("Report().Counts = %v, want %v (one issue per file and line)", got, want)
	}

	// A run that stops partway keeps what earlier runs said of a.csv.
	r2 := startRun(t, l, targetA, "a.csv")
	if err := r2.RecordLineIssue(t.Context(), issue("a.csv", 7, Invalid, "new")); err != nil {
		t.Fatalf("RecordLineIssue() = %v", err)
	}
	finish(t, r2, RunEnd{Outcome: "interrupted", SourceFile: "a.csv"})
	if got := report(t, l, targetA).Rows; got != 4 {
		t.Errorf("Report().Rows after a partial run = %d, want 4", got)
	}

	// A run that reads a.csv to the end sweeps a.csv's older issues, and
	// only those: b.csv's stay, and its own stay.
	r3 := startRun(t, l, targetA, "a.csv")
	if err := r3.RecordLineIssue(t.Context(), issue("a.csv", 5, Invalid, "type: still unknown")); err != nil {
		t.Fatalf("RecordLineIssue() = %v", err)
	}
	finish(t, r3, RunEnd{ReadWholeFile: true, SourceFile: "a.csv"})
	var got []string
	for _, f := range failures(t, l, targetA) {
		got = append(got, f.SourceFile+":"+f.Reason)
	}
	want := []string{"a.csv:type: still unknown", "b.csv:email: empty"}
	if !slices.Equal(got, want) {
		t.Errorf("Failures() after a whole read of a.csv = %q, want %q", got, want)
	}
}

func TestTargets_AreIsolated(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	a := startRun(t, l, targetA, "customers.csv")
	mark(t, a, sendFor("k1", "customers.csv", 2))
	record(t, a, Outcome{Key: "k1", Status: Created, CustomerID: "srv-1"})
	if err := a.RecordLineIssue(t.Context(), LineIssue{SourceFile: "customers.csv", SourceLine: 3, Status: Invalid, Reason: "bad"}); err != nil {
		t.Fatalf("RecordLineIssue() = %v", err)
	}
	finish(t, a, RunEnd{})

	if got := lookup(t, l, targetB, "k1"); len(got) != 0 {
		t.Errorf("Lookup(B, k1) = %+v, want nothing: k1 was done on A", got)
	}
	if got := counts(report(t, l, targetB)); len(got) != 0 {
		t.Errorf("Report(B).Counts = %v, want all zero", got)
	}
	if got := failures(t, l, targetB); len(got) != 0 {
		t.Errorf("Failures(B) = %+v, want none", got)
	}

	b := startRun(t, l, targetB, "customers.csv")
	mark(t, b, sendFor("k1", "customers.csv", 2))
	record(t, b, Outcome{Key: "k1", Status: Rejected, Message: "no"})
	finish(t, b, RunEnd{})
	if got := lookup(t, l, targetA, "k1")["k1"]; got.Status != Created || got.Attempts != 1 {
		t.Errorf("Lookup(A, k1) = %+v, want created after 1 attempt, untouched by B", got)
	}
	if got := lookup(t, l, targetB, "k1")["k1"]; got.Status != Rejected || got.Attempts != 1 {
		t.Errorf("Lookup(B, k1) = %+v, want rejected after 1 attempt", got)
	}
}

func TestLookup_ManyKeys(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "customers.csv")
	n := lookupChunk + 1200 // more than one statement's worth
	var keys []string
	var sends []Send
	for i := range n {
		k := benchKey(i, false)
		keys = append(keys, k)
		if i%2 == 0 {
			sends = append(sends, sendFor(k, "customers.csv", i+2))
		}
	}
	if err := r.MarkInFlightBatch(t.Context(), sends); err != nil {
		t.Fatalf("MarkInFlightBatch(%d sends) = %v", len(sends), err)
	}
	got := lookup(t, l, targetA, keys...)
	if len(got) != n/2 {
		t.Fatalf("len(Lookup(%d keys)) = %d, want %d", n, len(got), n/2)
	}
	for i, k := range keys {
		if _, ok := got[k]; ok != (i%2 == 0) {
			t.Errorf("Lookup(%s) found = %v, want %v", k, ok, i%2 == 0)
		}
	}
	if got := lookup(t, l, targetA); len(got) != 0 {
		t.Errorf("Lookup() = %v, want empty", got)
	}
	if got := lookup(t, l, "never seen", keys...); len(got) != 0 {
		t.Errorf("Lookup(unknown target) = %v, want empty", got)
	}
}

func TestRun_ClearLineIssue(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r1 := startRun(t, l, targetA, "a.csv")
	for _, line := range []int{3, 4} {
		li := LineIssue{SourceFile: "a.csv", SourceLine: line, Status: Invalid, Reason: "bad"}
		if err := r1.RecordLineIssue(t.Context(), li); err != nil {
			t.Fatalf("RecordLineIssue(%+v) = %v", li, err)
		}
	}
	finish(t, r1, RunEnd{ReadWholeFile: true, SourceFile: "a.csv"})

	// A failures file's fixed row, imported, supersedes a.csv:3.
	r2 := startRun(t, l, targetA, "failures.csv")
	if err := r2.ClearLineIssue(t.Context(), "a.csv", 3, ""); err != nil {
		t.Fatalf("ClearLineIssue(a.csv, 3) = %v", err)
	}
	if err := r2.ClearLineIssue(t.Context(), "a.csv", 99, ""); err != nil { // nothing there
		t.Fatalf("ClearLineIssue(a.csv, 99) = %v", err)
	}
	finish(t, r2, RunEnd{ReadWholeFile: true, SourceFile: "failures.csv"})
	got := failures(t, l, targetA)
	if len(got) != 1 || got[0].SourceLine != 4 {
		t.Errorf("Failures() after ClearLineIssue(a.csv, 3) = %+v, want only a.csv:4", got)
	}
}

// TestLedger_LookupByEmailFindsRowsByTheirFoldedEmail: an email finds the
// rows that carry it as their folded email on the target, the likeliest to
// have created its customer first whatever their order; never a row without
// one (keyed by email) or of another target.
func TestLedger_LookupByEmailFindsRowsByTheirFoldedEmail(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "f.csv")
	sends := []Send{
		{Key: "id:p6", Email: "ana@example.com", FoldedEmail: "ana@example.com"},   // failed
		{Key: "id:p7", Email: "Ana@Example.com", FoldedEmail: "ana@example.com"},   // in doubt
		{Key: "id:p8", Email: "ANA@example.com", FoldedEmail: "ana@example.com"},   // failed
		{Key: "id:j1", Email: "JOSÉ@example.com", FoldedEmail: "josé@example.com"}, // created
		{Key: "email:bob@example.com", Email: "bob@example.com"},
	}
	for i, s := range sends {
		s.Type, s.CustomerID, s.SourceFile, s.SourceLine = "individual", strings.TrimPrefix(s.Key, "id:"), "f.csv", i+2
		mark(t, r, s)
	}
	for key, st := range map[string]Status{"id:p6": Failed, "id:p7": InDoubt, "id:p8": Failed, "id:j1": Created, "email:bob@example.com": Created} {
		record(t, r, Outcome{Key: key, Status: st})
	}
	finish(t, r, RunEnd{})
	other := startRun(t, l, targetB, "g.csv")
	mark(t, other, Send{Key: "id:q1", Email: "carla@example.com", FoldedEmail: "carla@example.com", Type: "individual", CustomerID: "q1", SourceFile: "g.csv", SourceLine: 2})
	finish(t, other, RunEnd{})

	got, err := l.LookupByEmail(t.Context(), targetA, []string{"ana@example.com", "josé@example.com", "bob@example.com", "carla@example.com"})
	if err != nil {
		t.Fatalf("LookupByEmail = %v", err)
	}
	if len(got) != 2 || got["ana@example.com"].CustomerIDSent != "p7" || got["josé@example.com"].Status != Created {
		t.Errorf("LookupByEmail = %+v; want ana@example.com as p7 (in doubt, over the failed p6 and p8) and josé@example.com", got)
	}
}

// TestRun_SetMessageAndReplaceWithLineIssue: a refused row keeps one
// record, as the importer tells: in place with a new message, or as a line
// issue instead of its keyed row.
func TestRun_SetMessageAndReplaceWithLineIssue(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("doubt", "f.csv", 2))
	mark(t, r, sendFor("failed", "f.csv", 3))
	record(t, r, Outcome{Key: "doubt", Status: InDoubt, Message: "timeout"})
	record(t, r, Outcome{Key: "failed", Status: Failed, Message: "503"})
	finish(t, r, RunEnd{})

	r = startRun(t, l, targetA, "f.csv")
	if err := r.SetMessage(t.Context(), "doubt", "timeout | refused: conflict"); err != nil {
		t.Fatalf("SetMessage(doubt) = %v", err)
	}
	li := LineIssue{SourceFile: "f.csv", SourceLine: 3, Status: Invalid, Email: "failed@example.com", Type: "individual", Reason: "conflict failed"}
	if err := r.ReplaceWithLineIssue(t.Context(), "failed", li); err != nil {
		t.Fatalf("ReplaceWithLineIssue(failed) = %v", err)
	}
	finish(t, r, RunEnd{})
	rep := report(t, l, targetA)
	if rep.Rows != 2 || rep.Counts[InDoubt] != 1 || rep.Counts[Invalid] != 1 {
		t.Errorf("report after the conflicts: %d rows, %v; want 2: 1 in_doubt, 1 invalid", rep.Rows, rep.Counts)
	}
	got := lookup(t, l, targetA, "doubt", "failed")
	if _, ok := got["failed"]; ok {
		t.Errorf("Lookup(failed) after ReplaceWithLineIssue = %+v; want it gone to its line issue", got["failed"])
	}
	if d := got["doubt"]; d.Status != InDoubt || d.Message != "timeout | refused: conflict" || d.LastRun != r.ID {
		t.Errorf("Lookup(doubt) after SetMessage = %+v; want in_doubt, the new message, last run %d", d, r.ID)
	}
}

// TestRun_ReleaseWithoutLastRunKeepsTheRows: a Prior that does not come
// from Lookup (LastRun 0) leaves the row's last run as it is, not 0.
func TestRun_ReleaseWithoutLastRunKeepsTheRows(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	_, prior := failedEarlier(t, l, "a")
	prior.LastRun = 0

	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("a", "f.csv", 2))
	if err := r.Release(t.Context(), "a", &prior); err != nil {
		t.Fatal(err)
	}
	flush(t, r)
	if got := lookup(t, l, targetA, "a")["a"]; got.LastRun != r.ID || got.Status != Failed {
		t.Errorf("a after Release with no LastRun = %+v, want failed, last run %d kept", got, r.ID)
	}
}

// TestRun_MarkNewAndKnownRowsInOneWrite: one write that marks new rows and
// a row the ledger holds counts the known row's attempt and takes its new
// fields, and a key marked twice in the write is one row marked twice.
func TestRun_MarkNewAndKnownRowsInOneWrite(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	_, before := failedEarlier(t, l, "old")
	r := startRun(t, l, targetA, "g.csv")
	old := sendFor("old", "g.csv", 7)
	old.Email, old.Fingerprint = "changed@example.com", "fp2"
	batch := []Send{sendFor("n1", "g.csv", 1), old, sendFor("n2", "g.csv", 3), sendFor("n2", "g.csv", 4)}
	if err := r.MarkInFlightBatch(t.Context(), batch); err != nil {
		t.Fatalf("MarkInFlightBatch() = %v", err)
	}
	got := lookup(t, l, targetA, "old", "n1", "n2")
	if g := got["old"]; g.Attempts != before.Attempts+1 || g.Status != InFlight || g.Email != old.Email ||
		g.Fingerprint != old.Fingerprint || g.SourceFile != "g.csv" || g.SourceLine != 7 {
		t.Errorf("old = %+v, want in flight, attempt %d, with the new send's fields", g, before.Attempts+1)
	}
	if g := got["n2"]; g.Attempts != 2 || g.SourceLine != 4 {
		t.Errorf("n2 = %+v, want attempt 2, line 4", g)
	}
	for _, k := range []string{"old", "n1", "n2"} {
		record(t, r, Outcome{Key: k, Status: Created, CustomerID: "c-" + k, HTTPStatus: 201})
	}
	flush(t, r)
	for k, p := range lookup(t, l, targetA, "old", "n1", "n2") {
		if p.Status != Created {
			t.Errorf("%s after Record = %s, want %s", k, p.Status, Created)
		}
	}
}
