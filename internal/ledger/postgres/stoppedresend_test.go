package postgres

import (
	"testing"
	"time"
)

// TestFleet_AFailedRowQueuedByAStoppedResendInDoubtRunStaysFailed: a row
// that failed (nothing created; attempts > 0) is queued by an import with
// --resend-in-doubt that is stopped for --max-errors before the row is
// sent. The row never left in doubt: a lookup must read it failed, so a
// later plain import sends it.
func TestFleet_AFailedRowQueuedByAStoppedResendInDoubtRunStaysFailed(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	const key = "y.csv-2"
	r0 := startRun(t, l, targetA, "y.csv")
	mark(t, r0, sendFor(key, "y.csv", 2))
	record(t, r0, Outcome{Key: key, Status: Failed, Message: "503"})
	finish(t, r0, RunEnd{Outcome: "completed"})
	if got := lookup(t, l, targetA, key)[key]; got.Status != Failed || got.Attempts == 0 {
		t.Fatalf("before: %s attempts %d, want failed with attempts", got.Status, got.Attempts)
	}
	r1, err := l.StartRun(t.Context(), RunInfo{Target: targetA, SourceFile: "y.csv",
		Options: map[string]any{"resendInDoubt": true, "maxErrors": 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r1.unlock)
	if err := r1.Queue(t.Context(), []Send{sendFor(key, "y.csv", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := r1.Loaded(t.Context(), RunEnd{Outcome: "completed", SourceFile: "y.csv"}); err != nil {
		t.Fatal(err)
	}
	if err := l.StopRun(t.Context(), r1.ID, "stopped (--max-errors 1)"); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, l, targetA, 5*time.Second)
	if _, ok := claimChunk(t, w); ok {
		t.Fatal("a stopped run's chunk was claimed")
	}
	if got := lookup(t, l, targetA, key)[key].Status; got != Failed {
		t.Errorf("a failed row queued by a stopped --resend-in-doubt run reads %q; want failed (nothing was ever created for it)", got)
	}
}
