package postgres

import (
	"testing"
)

// TestRun_LineIssueKeepsTheFileBytes: an invalid line's fields are what
// the file held, bytes that are not UTF-8 and NULs included, as the SQLite
// ledger keeps them; a message that PostgreSQL's text cannot hold is kept
// with those bytes replaced, not refused.
func TestRun_LineIssueKeepsTheFileBytes(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "latin1.csv")
	li := LineIssue{SourceFile: "latin1.csv", SourceLine: 2, Status: Invalid,
		Email: "jos\xe9@example.com", Type: "indiv\x00idual", CustomerID: "\xff\xfe", Reason: "email: is not valid UTF-8 \xe9\x00"}
	if err := r.RecordLineIssue(t.Context(), li); err != nil {
		t.Fatalf("RecordLineIssue(%+v) = %v", li, err)
	}
	mark(t, r, sendFor("k", "latin1.csv", 3))
	record(t, r, Outcome{Key: "k", Status: Rejected, Message: "server said \x00\xff"})
	finish(t, r, RunEnd{})
	got := failures(t, l, targetA)
	if len(got) != 2 {
		t.Fatalf("Failures() = %+v, want the line issue and the rejected row", got)
	}
	if f := got[0]; f.Email != li.Email || f.Type != li.Type || f.CustomerID != li.CustomerID {
		t.Errorf("Failures()[0] fields = %q, %q, %q, want %q, %q, %q", f.Email, f.Type, f.CustomerID, li.Email, li.Type, li.CustomerID)
	}
	if got, want := got[0].Reason, "email: is not valid UTF-8 \uFFFD\uFFFD"; got != want {
		t.Errorf("Failures()[0].Reason = %q, want %q", got, want)
	}
	if got, want := got[1].Reason, "server said \uFFFD\uFFFD"; got != want {
		t.Errorf("Failures()[1].Reason = %q, want %q", got, want)
	}
}

// TestRun_SetMessageAndReplaceWithLineIssue: the two writes a refused row
// takes. SetMessage keeps the row's state and makes the run its last;
// ReplaceWithLineIssue moves the row to its line, in one commit.
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
		t.Fatalf("SetMessage() = %v", err)
	}
	li := LineIssue{SourceFile: "f.csv", SourceLine: 3, Status: Invalid, Email: "failed@example.com", Type: "individual", Reason: "conflict"}
	if err := r.ReplaceWithLineIssue(t.Context(), "failed", li); err != nil {
		t.Fatalf("ReplaceWithLineIssue() = %v", err)
	}
	finish(t, r, RunEnd{})

	got := lookup(t, l, targetA, "doubt", "failed")
	if _, ok := got["failed"]; ok {
		t.Errorf("Lookup(failed) after ReplaceWithLineIssue = %+v, want no row", got["failed"])
	}
	if d := got["doubt"]; d.Status != InDoubt || d.LastRun != r.ID {
		t.Errorf("Lookup(doubt) after SetMessage = %+v, want in doubt, last run %d", d, r.ID)
	}
	fs := failures(t, l, targetA)
	if len(fs) != 2 || fs[0].Reason != "timeout | refused: conflict" || fs[1].Status != Invalid || fs[1].Reason != "conflict" {
		t.Errorf("Failures() = %+v, want doubt with its new message, then f.csv:3 invalid", fs)
	}
}
