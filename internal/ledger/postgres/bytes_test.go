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
