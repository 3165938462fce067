// Package storetest is the conformance suite of the stores of import runs:
// the behaviours every store must have, written once and run against each
// (the SQLite ledger, the memory store, and the next one). A store passes
// by calling Test from its own tests with a Harness.
package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Store is what the suite needs of a store; R is its run.
type Store[R Run] interface {
	Lookup(ctx context.Context, target string, keys []string) (map[string]ledger.Prior, error)
	LookupByEmail(ctx context.Context, target string, emails []string) (map[string]ledger.Prior, error)
	AssignsIDs(ctx context.Context, target string) (bool, error)
	KeepsIDs(ctx context.Context, target string) (bool, error)
	StartRun(ctx context.Context, info ledger.RunInfo) (R, error)
	Report(ctx context.Context, target string, maxRuns int) (ledger.Report, error)
	Failures(ctx context.Context, target string, statuses []row.Status, fn func(ledger.Failure) error) error
}

// Run is what the suite needs of a store's run.
type Run interface {
	MarkInFlight(ctx context.Context, s ledger.Send) error
	MarkInFlightBatch(ctx context.Context, sends []ledger.Send) error
	Record(ctx context.Context, o ledger.Outcome) error
	Release(ctx context.Context, key string, prior *ledger.Prior) error
	RecordLineIssue(ctx context.Context, li ledger.LineIssue) error
	ClearLineIssue(ctx context.Context, file string, line int, digest string) error
	SetMessage(ctx context.Context, key, message string) error
	ReplaceWithLineIssue(ctx context.Context, key string, li ledger.LineIssue) error
	RecordAssignsIDs(ctx context.Context) error
	RecordKeepsIDs(ctx context.Context) error
	Flush(ctx context.Context) error
	Finish(ctx context.Context, end ledger.RunEnd) error
}

// Harness is how the suite makes and ends a store.
type Harness[R Run, S Store[R]] struct {
	// Open returns a new store kept in dir (a fresh t.TempDir), closed by
	// t.Cleanup.
	Open func(t *testing.T, dir string) S
	// Crash ends s as the death of its process would, runs not finished
	// included, and returns the store the next process uses.
	Crash func(t *testing.T, s S, dir string) S
	// RunID is r's id.
	RunID func(r R) int64
	// Durable: the store survives its process. Reopen then closes s and
	// opens the store kept in dir again.
	Durable bool
	Reopen  func(t *testing.T, s S, dir string) S
}

const (
	targetA = "https://api.example/|client-a"
	targetB = "https://api.example/|client-b"
)

// Test runs the suite against the store h makes.
func Test[R Run, S Store[R]](t *testing.T, h Harness[R, S]) {
	tests := map[string]func(*testing.T, *suite[R, S]){
		"LookupFindsWhatARunMarkedAndRecorded":    testLookup[R, S],
		"MarkingAgainCountsTheAttempt":            testMarkAgain[R, S],
		"ReleasePutsTheRowBackAsItWas":            testRelease[R, S],
		"LookupByEmailPrefersTheLikeliestToExist": testLookupByEmail[R, S],
		"InFlightIsReportedInDoubt":               testInFlightReported[R, S],
		"ADeadRunsRowsAreInDoubtNextRun":          testCrashRecovery[R, S],
		"OneRunATarget":                           testLocks[R, S],
		"LineIssuesAreKeptByFileAndLine":          testLineIssues[R, S],
		"AFixReplacesOnlyTheIssueItNamed":         testClearLineIssueByDigest[R, S],
		"ConflictsAreRecordedAsTold":              testConflicts[R, S],
		"ReportListsRunsNewestFirst":              testReportRuns[R, S],
		"FailuresInFileOrder":                     testFailures[R, S],
		"ReopenedStoreHoldsEverything":            testDurable[R, S],
		"ATargetThatAssignsIDsIsRemembered":       testAssignsIDs[R, S],
		"ATargetThatKeepsIDsIsRemembered":         testKeepsIDs[R, S],
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f(t, &suite[R, S]{h: h, s: h.Open(t, dir), dir: dir})
		})
	}
}

// suite is one test's store and the helpers on it.
type suite[R Run, S Store[R]] struct {
	h   Harness[R, S]
	s   S
	dir string
}

func (x *suite[R, S]) start(t *testing.T, target, file string) R {
	t.Helper()
	r, err := x.s.StartRun(t.Context(), ledger.RunInfo{Target: target, SourceFile: file, Options: map[string]int{"concurrency": 4}})
	if err != nil {
		t.Fatalf("StartRun(%s) = %v", target, err)
	}
	return r
}

func (x *suite[R, S]) lookup(t *testing.T, target string, keys ...string) map[string]ledger.Prior {
	t.Helper()
	got, err := x.s.Lookup(t.Context(), target, keys)
	if err != nil {
		t.Fatalf("Lookup(%v) = %v", keys, err)
	}
	return got
}

func (x *suite[R, S]) report(t *testing.T, target string) ledger.Report {
	t.Helper()
	rep, err := x.s.Report(t.Context(), target, 10)
	if err != nil {
		t.Fatalf("Report(%s) = %v", target, err)
	}
	return rep
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s = %v", what, err)
	}
}

func sendFor(key, file string, line int) ledger.Send {
	return ledger.Send{Key: key, Email: key + "@example.com", Type: "individual", CustomerID: "cid-" + key,
		Fingerprint: "fp-" + key, SourceFile: file, SourceLine: line}
}

// failedEarlier leaves key failed by a finished run, and returns its prior.
func (x *suite[R, S]) failedEarlier(t *testing.T, key string) ledger.Prior {
	t.Helper()
	r := x.start(t, targetA, "old.csv")
	must(t, "MarkInFlight", r.MarkInFlight(t.Context(), sendFor(key, "old.csv", 2)))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: key, Status: row.Failed, HTTPStatus: 503, Message: "unavailable"}))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	return x.lookup(t, targetA, key)[key]
}

func testLookup[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	r := x.start(t, targetA, "f.csv")
	s := sendFor("k1", "f.csv", 2)
	must(t, "MarkInFlight", r.MarkInFlight(t.Context(), s))
	want := ledger.Prior{Status: row.InFlight, Email: s.Email, Type: s.Type, CustomerIDSent: s.CustomerID,
		Fingerprint: s.Fingerprint, SourceFile: s.SourceFile, SourceLine: s.SourceLine, Attempts: 1, LastRun: x.h.RunID(r)}
	if got := x.lookup(t, targetA, "k1")["k1"]; got != want {
		t.Fatalf("Lookup(k1) after MarkInFlight = %+v, want %+v", got, want)
	}
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "k1", Status: row.Created, CustomerID: "srv-1", HTTPStatus: 201}))
	must(t, "Flush", r.Flush(t.Context()))
	want.Status, want.CustomerID = row.Created, "srv-1"
	if got := x.lookup(t, targetA, "k1", "k2")["k1"]; got != want {
		t.Errorf("Lookup(k1) after Record = %+v, want %+v", got, want)
	}
	if got := x.lookup(t, targetA, "k2"); len(got) != 0 {
		t.Errorf("Lookup(k2), never marked = %+v, want nothing", got)
	}
	if got := x.lookup(t, targetB, "k1"); len(got) != 0 {
		t.Errorf("Lookup(k1) on another target = %+v, want nothing", got)
	}
}

func testMarkAgain[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	x.failedEarlier(t, "a")
	r := x.start(t, targetA, "f.csv")
	s := sendFor("a", "f.csv", 5)
	s.Fingerprint = "fp-changed"
	must(t, "MarkInFlight", r.MarkInFlight(t.Context(), s))
	got := x.lookup(t, targetA, "a")["a"]
	if got.Status != row.InFlight || got.Attempts != 2 || got.SourceFile != "f.csv" || got.SourceLine != 5 ||
		got.Fingerprint != "fp-changed" || got.LastRun != x.h.RunID(r) {
		t.Errorf("Lookup(a) marked again = %+v; want in flight, 2 attempts, f.csv:5, the new fingerprint, this run", got)
	}
}

func testRelease[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	prior := x.failedEarlier(t, "a")
	r := x.start(t, targetA, "f.csv")
	must(t, "MarkInFlightBatch", r.MarkInFlightBatch(t.Context(), []ledger.Send{sendFor("a", "f.csv", 3), sendFor("new", "f.csv", 4)}))
	must(t, "Release(a)", r.Release(t.Context(), "a", &prior))
	must(t, "Release(new)", r.Release(t.Context(), "new", nil))
	must(t, "Flush", r.Flush(t.Context()))
	got := x.lookup(t, targetA, "a", "new")
	if _, ok := got["new"]; ok {
		t.Errorf("Lookup(new) after Release(nil) = %+v, want it gone", got["new"])
	}
	if got["a"] != prior {
		t.Errorf("Lookup(a) after Release = %+v, want it as before, %+v", got["a"], prior)
	}
}

func testLookupByEmail[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	r := x.start(t, targetA, "f.csv")
	byID := func(id, email, folded string) ledger.Send {
		return ledger.Send{Key: "id:" + id, Email: email, FoldedEmail: folded, Type: "individual", CustomerID: id, SourceFile: "f.csv", SourceLine: 2}
	}
	must(t, "MarkInFlightBatch", r.MarkInFlightBatch(t.Context(), []ledger.Send{
		byID("p6", "ana@example.com", "ana@example.com"), byID("p7", "Ana@Example.com", "ana@example.com"),
		byID("p8", "ANA@example.com", "ana@example.com"), byID("j1", "JOSÉ@example.com", "josé@example.com"),
		{Key: "email:bob@example.com", Email: "bob@example.com", Type: "individual", CustomerID: "b1", SourceFile: "f.csv", SourceLine: 3},
	}))
	for key, st := range map[string]row.Status{"id:p6": row.Failed, "id:p7": row.InDoubt, "id:p8": row.Failed, "id:j1": row.Created, "email:bob@example.com": row.Created} {
		must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: key, Status: st}))
	}
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	got, err := x.s.LookupByEmail(t.Context(), targetA, []string{"ana@example.com", "josé@example.com", "bob@example.com"})
	if err != nil {
		t.Fatalf("LookupByEmail = %v", err)
	}
	if len(got) != 2 || got["ana@example.com"].CustomerIDSent != "p7" || got["josé@example.com"].Status != row.Created {
		t.Errorf("LookupByEmail = %+v; want ana@example.com as p7 (in doubt, over the failed p6 and p8), josé@example.com, and not bob (keyed by his email)", got)
	}
}

func testInFlightReported[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	r := x.start(t, targetA, "f.csv")
	must(t, "MarkInFlight", r.MarkInFlight(t.Context(), sendFor("a", "f.csv", 2)))
	must(t, "Flush", r.Flush(t.Context()))
	rep := x.report(t, targetA)
	if rep.Rows != 1 || rep.Counts[row.InDoubt] != 1 {
		t.Errorf("Report with a row in flight: %d rows, %v; want 1, in_doubt", rep.Rows, rep.Counts)
	}
	var got []ledger.Failure
	must(t, "Failures", x.s.Failures(t.Context(), targetA, []row.Status{row.InDoubt}, func(f ledger.Failure) error {
		got = append(got, f)
		return nil
	}))
	if len(got) != 1 || got[0].Status != row.InDoubt || got[0].Email != "a@example.com" {
		t.Errorf("Failures(in_doubt) with a row in flight = %+v, want it as in_doubt", got)
	}
}

func testCrashRecovery[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	r := x.start(t, targetA, "f.csv")
	dead := x.h.RunID(r)
	must(t, "MarkInFlightBatch", r.MarkInFlightBatch(t.Context(), []ledger.Send{sendFor("a", "f.csv", 2), sendFor("b", "f.csv", 3)}))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "b", Status: row.Created}))
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), ledger.LineIssue{SourceFile: "f.csv", SourceLine: 4, Status: row.Invalid, Reason: "bad"}))
	must(t, "Flush", r.Flush(t.Context()))
	x.s = x.h.Crash(t, x.s, x.dir)

	next := x.start(t, targetA, "f.csv")
	if got := x.lookup(t, targetA, "a")["a"]; got.Status != row.InDoubt || got.Message == "" {
		t.Errorf("Lookup(a) left in flight by a dead run = %+v; want in_doubt, saying why", got)
	}
	if got := x.lookup(t, targetA, "b")["b"]; got.Status != row.Created {
		t.Errorf("Lookup(b) recorded by a dead run = %+v; want created", got)
	}
	must(t, "Finish", next.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	for _, rr := range x.report(t, targetA).Runs {
		if rr.ID == dead {
			c := row.CountsOf(rr.Counts)
			if rr.Outcome != "crashed" || c.Created != 1 || c.InDoubt != 1 || c.Invalid != 1 {
				t.Errorf("the dead run in the report: %s, counts %v; want crashed, 1 created, 1 in_doubt, 1 invalid", rr.Outcome, rr.Counts)
			}
			return
		}
	}
	t.Errorf("the report lists no run %d", dead)
}

func testLocks[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	r := x.start(t, targetA, "f.csv")
	if _, err := x.s.StartRun(t.Context(), ledger.RunInfo{Target: targetA, SourceFile: "g.csv"}); !errors.Is(err, ledger.ErrBusy) {
		t.Errorf("StartRun(A) while a run holds A = %v, want ErrBusy", err)
	}
	other := x.start(t, targetB, "f.csv")
	must(t, "Finish(B)", other.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	must(t, "Finish(A)", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	again := x.start(t, targetA, "f.csv")
	must(t, "Finish(A) again", again.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
}

func testLineIssues[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	issue := func(file string, line int, st row.Status, reason string) ledger.LineIssue {
		return ledger.LineIssue{SourceFile: file, SourceLine: line, Status: st, Email: "x@example.com", Type: "individual", Reason: reason}
	}
	r := x.start(t, targetA, "f.csv")
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), issue("f.csv", 2, row.Invalid, "bad email")))
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), issue("f.csv", 2, row.Duplicate, "repeats line 1")))
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), issue("f.csv", 3, row.Invalid, "bad type")))
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), issue("g.csv", 3, row.Invalid, "bad type")))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	rep := x.report(t, targetA)
	if rep.Rows != 3 || rep.Counts[row.Duplicate] != 1 || rep.Counts[row.Invalid] != 2 {
		t.Errorf("Report after line issues: %d rows, %v; want 3: f.csv:2 replaced by a duplicate, 2 invalid", rep.Rows, rep.Counts)
	}

	r = x.start(t, targetA, "f.csv")
	must(t, "ClearLineIssue", r.ClearLineIssue(t.Context(), "f.csv", 3, ""))
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), issue("f.csv", 9, row.Invalid, "new")))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed", ReadWholeFile: true, SourceFile: "f.csv"}))
	var got []string
	must(t, "Failures", x.s.Failures(t.Context(), targetA, nil, func(f ledger.Failure) error {
		got = append(got, f.Reason)
		return nil
	}))
	if len(got) != 2 || got[0] != "new" || got[1] != "bad type" {
		t.Errorf("Failures after a run read f.csv whole = %q; want this run's f.csv:9 and g.csv:3 (f.csv's older issues gone)", got)
	}
}

// testClearLineIssueByDigest: a row fixed through a failures file replaces
// the issue at its file and line only while that issue has the content the
// failures file showed; a failures file without digests clears any.
func testClearLineIssueByDigest[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	named := ledger.LineIssue{SourceFile: "f.csv", SourceLine: 7, Status: row.Invalid, Email: "beto@example", Type: "BUSINESS", Reason: "f.csv:7: email: no domain"}
	since := ledger.LineIssue{SourceFile: "f.csv", SourceLine: 7, Status: row.Invalid, Email: "zoe@example.com", Type: "PERSON", Reason: "f.csv:7: type: unknown"}
	if named.Digest() == since.Digest() || named.Digest() == "" {
		t.Fatalf("Digest() = %q for both issues, want two different digests", named.Digest())
	}
	r := x.start(t, targetA, "f.csv")
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), since))
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), ledger.LineIssue{SourceFile: "f.csv", SourceLine: 8, Status: row.Duplicate, Reason: "repeats line 2"}))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	lines := func() []int {
		t.Helper()
		var got []int
		must(t, "Failures", x.s.Failures(t.Context(), targetA, nil, func(f ledger.Failure) error {
			if f.SourceLine == 7 && f.Digest() != since.Digest() {
				t.Errorf("Failure at f.csv:7 has Digest %s, want the recorded issue's %s", f.Digest(), since.Digest())
			}
			got = append(got, f.SourceLine)
			return nil
		}))
		return got
	}

	r = x.start(t, targetA, "fix.csv")
	must(t, "ClearLineIssue", r.ClearLineIssue(t.Context(), "f.csv", 7, named.Digest()))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	if got := lines(); !slices.Equal(got, []int{7, 8}) {
		t.Errorf("lines after ClearLineIssue(f.csv, 7, the digest of an issue replaced since) = %v, want [7 8]", got)
	}

	r = x.start(t, targetA, "fix.csv")
	must(t, "ClearLineIssue", r.ClearLineIssue(t.Context(), "f.csv", 7, since.Digest()))
	must(t, "ClearLineIssue", r.ClearLineIssue(t.Context(), "f.csv", 8, ""))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	if got := lines(); len(got) != 0 {
		t.Errorf("lines after ClearLineIssue with the issue's digest, and with none = %v, want none", got)
	}
}

func testConflicts[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	r := x.start(t, targetA, "f.csv")
	must(t, "MarkInFlightBatch", r.MarkInFlightBatch(t.Context(), []ledger.Send{sendFor("doubt", "f.csv", 2), sendFor("failed", "f.csv", 3)}))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "doubt", Status: row.InDoubt, Message: "timeout"}))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "failed", Status: row.Failed, Message: "503"}))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))

	r = x.start(t, targetA, "f.csv")
	must(t, "SetMessage", r.SetMessage(t.Context(), "doubt", "timeout | refused: conflict"))
	li := ledger.LineIssue{SourceFile: "f.csv", SourceLine: 3, Status: row.Invalid, Email: "failed@example.com", Type: "individual", Reason: "conflict"}
	must(t, "ReplaceWithLineIssue", r.ReplaceWithLineIssue(t.Context(), "failed", li))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	got := x.lookup(t, targetA, "doubt", "failed")
	if _, ok := got["failed"]; ok {
		t.Errorf("Lookup(failed) after ReplaceWithLineIssue = %+v, want it gone", got["failed"])
	}
	if d := got["doubt"]; d.Status != row.InDoubt || d.Message != "timeout | refused: conflict" || d.LastRun != x.h.RunID(r) {
		t.Errorf("Lookup(doubt) after SetMessage = %+v; want in_doubt, the new message, run %d last", d, x.h.RunID(r))
	}
	if rep := x.report(t, targetA); rep.Rows != 2 || rep.Counts[row.InDoubt] != 1 || rep.Counts[row.Invalid] != 1 {
		t.Errorf("Report after the conflicts: %d rows, %v; want 2: 1 in_doubt, 1 invalid", rep.Rows, rep.Counts)
	}
}

func testReportRuns[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	var ids []int64
	for i := range 3 {
		r := x.start(t, targetA, "f.csv")
		ids = append(ids, x.h.RunID(r))
		must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed", Counts: row.Counts{Read: int64(i), Created: int64(i)}}))
	}
	rep, err := x.s.Report(t.Context(), targetA, 2)
	if err != nil {
		t.Fatalf("Report(A, 2) = %v", err)
	}
	if len(rep.Runs) != 2 || rep.Runs[0].ID != ids[2] || rep.Runs[1].ID != ids[1] {
		t.Fatalf("Report(A, 2).Runs = %+v, want runs %d, %d", rep.Runs, ids[2], ids[1])
	}
	got := rep.Runs[0]
	if got.Outcome != "completed" || got.EndedAt == "" || row.CountsOf(got.Counts).Created != 2 || string(got.Options) != `{"concurrency":4}` {
		t.Errorf("Report(A, 2).Runs[0] = %+v, want completed, ended, 2 created, options recorded", got)
	}
	if rep := x.report(t, targetB); rep.Rows != 0 || len(rep.Runs) != 0 || len(rep.Counts) != len(row.Statuses) {
		t.Errorf("Report of a target never seen = %+v, want zeros for every status, no run", rep)
	}
}

func testFailures[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	r := x.start(t, targetA, "b.csv")
	must(t, "MarkInFlightBatch", r.MarkInFlightBatch(t.Context(), []ledger.Send{sendFor("k9", "b.csv", 9), sendFor("k2", "a.csv", 2), sendFor("ok", "a.csv", 1)}))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "k9", Status: row.Failed, Message: "503"}))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "k2", Status: row.Rejected, Message: "422"}))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "ok", Status: row.Created}))
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), ledger.LineIssue{SourceFile: "b.csv", SourceLine: 3, Status: row.Invalid, Reason: "bad"}))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed"}))
	var got []string
	collect := func(f ledger.Failure) error {
		got = append(got, f.SourceFile+":"+string(f.Status))
		return nil
	}
	must(t, "Failures", x.s.Failures(t.Context(), targetA, nil, collect))
	if want := []string{"a.csv:rejected", "b.csv:invalid", "b.csv:failed"}; !slices.Equal(got, want) {
		t.Errorf("Failures(all) = %q, want %q (by file and line, nothing done)", got, want)
	}
	got = nil
	must(t, "Failures", x.s.Failures(t.Context(), targetA, []row.Status{row.Failed}, collect))
	if want := []string{"b.csv:failed"}; !slices.Equal(got, want) {
		t.Errorf("Failures(failed) = %q, want %q", got, want)
	}
}

func testDurable[R Run, S Store[R]](t *testing.T, x *suite[R, S]) {
	if !x.h.Durable {
		t.Skip("the store does not outlive its process")
	}
	r := x.start(t, targetA, "f.csv")
	must(t, "MarkInFlight", r.MarkInFlight(t.Context(), sendFor("a", "f.csv", 2)))
	must(t, "Record", r.Record(t.Context(), ledger.Outcome{Key: "a", Status: row.Created, CustomerID: "srv-a"}))
	must(t, "RecordLineIssue", r.RecordLineIssue(t.Context(), ledger.LineIssue{SourceFile: "f.csv", SourceLine: 3, Status: row.Invalid, Reason: "bad"}))
	must(t, "Finish", r.Finish(t.Context(), ledger.RunEnd{Outcome: "completed", Counts: row.Counts{Read: 2, Created: 1, Invalid: 1}}))
	before := x.report(t, targetA)
	x.s = x.h.Reopen(t, x.s, x.dir)
	if got := x.lookup(t, targetA, "a")["a"]; got.Status != row.Created || got.CustomerID != "srv-a" {
		t.Errorf("Lookup(a) after reopening = %+v, want created as srv-a", got)
	}
	after := x.report(t, targetA)
	if after.Rows != before.Rows || len(after.Runs) != 1 || row.CountsOf(after.Runs[0].Counts) != row.CountsOf(before.Runs[0].Counts) {
		t.Errorf("Report after reopening = %+v, want %+v", after, before)
	}
}
