package ledger

import (
	"errors"
	"path/filepath"
	"testing"
)

const (
	targetA = "https://sandbox.ripio.example client-a"
	targetB = "https://api.ripio.example client-b"
)

// openLedger opens (creating) the ledger at path and closes it when the test
// ends.
func openLedger(t *testing.T, path string) *Ledger {
	t.Helper()
	l, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l
}

// openForClose opens a ledger at path that the test closes itself, to see
// what Close returns.
func openForClose(t *testing.T, path string, opts Options) *Ledger {
	t.Helper()
	l, err := Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	return l
}

// wantFailedWrites checks that a ledger whose writer failed with want (after
// what) fails a later mark of key, a Flush and Close with it.
func wantFailedWrites(t *testing.T, l *Ledger, r *Run, key, what string, want error) {
	t.Helper()
	if err := r.MarkInFlight(t.Context(), sendFor(key, "f.csv", 3)); !errors.Is(err, want) {
		t.Errorf("MarkInFlight after %s = %v, want %v", what, err, want)
	}
	if err := r.Flush(t.Context()); !errors.Is(err, want) {
		t.Errorf("Flush after %s = %v, want %v", what, err, want)
	}
	if err := l.Close(); !errors.Is(err, want) {
		t.Errorf("Close after %s = %v, want %v", what, err, want)
	}
}

// newLedger opens a fresh ledger in the test's temporary directory.
func newLedger(t *testing.T) *Ledger {
	t.Helper()
	return openLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
}

// startRun starts a run of file on target. A run the test does not finish
// is released when the test ends.
func startRun(t *testing.T, l *Ledger, target, file string) *Run {
	t.Helper()
	r, err := l.StartRun(t.Context(), RunInfo{Target: target, SourceFile: file, Options: map[string]any{"concurrency": 4}})
	if err != nil {
		t.Fatalf("StartRun(%s) = %v", target, err)
	}
	t.Cleanup(r.unlock)
	return r
}

func finish(t *testing.T, r *Run, end RunEnd) {
	t.Helper()
	if end.Outcome == "" {
		end.Outcome = "completed"
	}
	if err := r.Finish(t.Context(), end); err != nil {
		t.Fatalf("Finish(%+v) = %v", end, err)
	}
}

// sendFor is the Send of row key of file at line.
func sendFor(key, file string, line int) Send {
	return Send{
		Key: key, Email: key + "@example.com", Type: "individual", CustomerID: "cid-" + key,
		Fingerprint: "fp-" + key, SourceFile: file, SourceLine: line,
	}
}

func mark(t *testing.T, r *Run, s Send) {
	t.Helper()
	if err := r.MarkInFlight(t.Context(), s); err != nil {
		t.Fatalf("MarkInFlight(%s) = %v", s.Key, err)
	}
}

func record(t *testing.T, r *Run, o Outcome) {
	t.Helper()
	if err := r.Record(t.Context(), o); err != nil {
		t.Fatalf("Record(%s, %s) = %v", o.Key, o.Status, err)
	}
}

func flush(t *testing.T, r *Run) {
	t.Helper()
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
}

// lookup returns what l holds of keys on target.
func lookup(t *testing.T, l *Ledger, target string, keys ...string) map[string]Prior {
	t.Helper()
	got, err := l.Lookup(t.Context(), target, keys)
	if err != nil {
		t.Fatalf("Lookup(%s, %v) = %v", target, keys, err)
	}
	return got
}

func report(t *testing.T, l *Ledger, target string) Report {
	t.Helper()
	rep, err := l.Report(t.Context(), target, 10)
	if err != nil {
		t.Fatalf("Report(%s) = %v", target, err)
	}
	return rep
}

// failures returns Failures(target, statuses) as a slice.
func failures(t *testing.T, l *Ledger, target string, statuses ...Status) []Failure {
	t.Helper()
	var got []Failure
	err := l.Failures(t.Context(), target, statuses, func(f Failure) error {
		got = append(got, f)
		return nil
	})
	if err != nil {
		t.Fatalf("Failures(%s, %v) = %v", target, statuses, err)
	}
	return got
}

// counts is a report's counts with the zeros left out, for comparing.
func counts(rep Report) map[Status]int {
	out := map[Status]int{}
	for s, n := range rep.Counts {
		if n != 0 {
			out[s] = n
		}
	}
	return out
}

// failedEarlier has a finished run fail key (line 2 of f.csv) and returns
// the run and what Lookup then holds of key.
func failedEarlier(t *testing.T, l *Ledger, key string) (*Run, Prior) {
	t.Helper()
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor(key, "f.csv", 2))
	record(t, r, Outcome{Key: key, Status: Failed, Message: "503"})
	finish(t, r, RunEnd{Outcome: "completed"})
	return r, lookup(t, l, targetA, key)[key]
}
