package storetest

import (
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// testAssignsIDs: what a run records of its target's ids is the target's,
// for later runs, across a crash and (for a durable store) a reopening.
func testAssignsIDs[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	assigns := func(target string) bool {
		t.Helper()
		got, err := x.s.AssignsIDs(t.Context(), target)
		if err != nil {
			t.Fatalf("AssignsIDs(%s) = %v", target, err)
		}
		return got
	}
	if assigns(targetA) || assigns("never-seen") {
		t.Fatalf("AssignsIDs before any record = true, want false")
	}
	r := x.start(t, targetA, "f.csv")
	must(t, "MarkInFlight", r.MarkInFlight(t.Context(), sendFor("a", "f.csv", 2)))
	must(t, "RecordAssignsIDs", r.RecordAssignsIDs(t.Context()))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "a", Status: row.Created, CustomerID: "srv-a"}))
	must(t, "RecordAssignsIDs again", r.RecordAssignsIDs(t.Context()))
	must(t, "Flush", r.Flush(t.Context()))
	if !assigns(targetA) || assigns(targetB) {
		t.Errorf("AssignsIDs after a run on %s recorded it = %v, %v on %s; want true, false", targetA, assigns(targetA), assigns(targetB), targetB)
	}
	x.s = x.h.Crash(t, x.s, x.dir)
	if !assigns(targetA) {
		t.Errorf("AssignsIDs after a crash = false, want true")
	}
	if got := x.lookup(t, targetA, "a")["a"]; got.CustomerID != "srv-a" {
		t.Errorf("Lookup(a) = %+v, want the server's id srv-a", got)
	}
	if x.h.Durable {
		x.s = x.h.Reopen(t, x.s, x.dir)
		if !assigns(targetA) {
			t.Errorf("AssignsIDs after reopening = false, want true")
		}
	}
}

// testKeepsIDs: a run's record that its target keeps the ids it is sent
// is the target's, for later runs, across a crash and (for a durable
// store) a reopening, and says nothing of another target, nor of whether
// the target assigns ids.
func testKeepsIDs[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	keeps := func(target string) bool {
		t.Helper()
		got, err := x.s.KeepsIDs(t.Context(), target)
		if err != nil {
			t.Fatalf("KeepsIDs(%s) = %v", target, err)
		}
		return got
	}
	if keeps(targetA) || keeps("never-seen") {
		t.Fatalf("KeepsIDs before any record = true, want false")
	}
	r := x.start(t, targetA, "f.csv")
	if keeps(targetA) {
		t.Fatalf("KeepsIDs of a target a run started on = true, want false")
	}
	must(t, "MarkInFlight", r.MarkInFlight(t.Context(), sendFor("a", "f.csv", 2)))
	must(t, "RecordKeepsIDs", r.RecordKeepsIDs(t.Context()))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "a", Status: row.Created, CustomerID: "a"}))
	must(t, "RecordKeepsIDs again", r.RecordKeepsIDs(t.Context()))
	must(t, "Flush", r.Flush(t.Context()))
	if !keeps(targetA) || keeps(targetB) {
		t.Errorf("KeepsIDs after a run on %s recorded it = %v, %v on %s; want true, false", targetA, keeps(targetA), keeps(targetB), targetB)
	}
	if got, err := x.s.AssignsIDs(t.Context(), targetA); err != nil || got {
		t.Errorf("AssignsIDs of a target recorded to keep its ids = %v, %v; want false", got, err)
	}
	x.s = x.h.Crash(t, x.s, x.dir)
	if !keeps(targetA) {
		t.Errorf("KeepsIDs after a crash = false, want true")
	}
	if x.h.Durable {
		x.s = x.h.Reopen(t, x.s, x.dir)
		if !keeps(targetA) {
			t.Errorf("KeepsIDs after reopening = false, want true")
		}
	}
}
