package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// The ledger's types and the row states under their names in package
// ledger's tests, so that these tests read as those, which they mirror.
type (
	Prior     = ledger.Prior
	Send      = ledger.Send
	Outcome   = ledger.Outcome
	LineIssue = ledger.LineIssue
	RunInfo   = ledger.RunInfo
	RunEnd    = ledger.RunEnd
	Report    = ledger.Report
	Failure   = ledger.Failure
	Status    = row.Status
)

const (
	Created   = row.Created
	Exists    = row.Exists
	Invalid   = row.Invalid
	Duplicate = row.Duplicate
	Rejected  = row.Rejected
	Failed    = row.Failed
	InDoubt   = row.InDoubt
	InFlight  = row.InFlight
)

const (
	targetA = "https://sandbox.ripio.example client-a"
	targetB = "https://api.ripio.example client-b"
)

// urlEnv names the database the tests use. Each test makes a schema of its
// own in it and drops it at the end.
const urlEnv = "BULKCREATE_TEST_POSTGRES_URL"

// testURL is the database to test against. Without one the test skips,
// except in CI (CI=true), where a skipped PostgreSQL test would hide that
// the store went untested.
func testURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(urlEnv)
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI runs the PostgreSQL store's tests (.ci/run starts a cluster with .ci/postgres.sh)", urlEnv)
		}
		t.Skipf("%s is not set; to run: export %s=$(bash .ci/postgres.sh /tmp/pg | tail -n 1)", urlEnv, urlEnv)
	}
	return url
}

// newSchema returns a schema name no other test uses, and drops the schema
// when the test ends.
func newSchema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	schema := "t_" + name[:min(len(name), 40)] + "_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// openLedger opens (creating) the ledger in schema and closes it when the
// test ends.
func openLedger(t testing.TB, url, schema string) *Ledger {
	t.Helper()
	l, err := Open(t.Context(), url, Options{Schema: schema})
	if err != nil {
		t.Fatalf("Open(%s) = %v", schema, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l
}

// newLedger opens a fresh ledger in a schema of the test's own.
func newLedger(t testing.TB) *Ledger {
	t.Helper()
	url := testURL(t)
	return openLedger(t, url, newSchema(t, url))
}

// startRun starts a run of file on target. A run the test does not finish
// is released when the test ends.
func startRun(t testing.TB, l *Ledger, target, file string) *Run {
	t.Helper()
	r, err := l.StartRun(t.Context(), RunInfo{Target: target, SourceFile: file, Options: map[string]any{"concurrency": 4}})
	if err != nil {
		t.Fatalf("StartRun(%s) = %v", target, err)
	}
	t.Cleanup(r.unlock)
	return r
}

func finish(t testing.TB, r *Run, end RunEnd) {
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

func mark(t testing.TB, r *Run, s Send) {
	t.Helper()
	if err := r.MarkInFlight(t.Context(), s); err != nil {
		t.Fatalf("MarkInFlight(%s) = %v", s.Key, err)
	}
}

func record(t testing.TB, r *Run, o Outcome) {
	t.Helper()
	if err := r.Record(t.Context(), o); err != nil {
		t.Fatalf("Record(%s, %s) = %v", o.Key, o.Status, err)
	}
}

func flush(t testing.TB, r *Run) {
	t.Helper()
	if err := r.Flush(t.Context()); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
}

// lookup returns what l holds of keys on target.
func lookup(t testing.TB, l *Ledger, target string, keys ...string) map[string]Prior {
	t.Helper()
	got, err := l.Lookup(t.Context(), target, keys)
	if err != nil {
		t.Fatalf("Lookup(%s, %v) = %v", target, keys, err)
	}
	return got
}

func report(t testing.TB, l *Ledger, target string) Report {
	t.Helper()
	rep, err := l.Report(t.Context(), target, 10)
	if err != nil {
		t.Fatalf("Report(%s) = %v", target, err)
	}
	return rep
}

// failures returns Failures(target, statuses) as a slice.
func failures(t testing.TB, l *Ledger, target string, statuses ...Status) []Failure {
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
func failedEarlier(t testing.TB, l *Ledger, key string) (*Run, Prior) {
	t.Helper()
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor(key, "f.csv", 2))
	record(t, r, Outcome{Key: key, Status: Failed, Message: "503"})
	finish(t, r, RunEnd{Outcome: "completed"})
	return r, lookup(t, l, targetA, key)[key]
}

// wantFailedWrites checks that a ledger whose writer failed with want
// fails a later mark, a Flush and Close with it.
func wantFailedWrites(t *testing.T, l *Ledger, r *Run, what string) {
	t.Helper()
	want := l.w.failed()
	if want == nil {
		t.Fatalf("the writer has not failed after %s", what)
	}
	if err := r.MarkInFlight(t.Context(), sendFor("later", "f.csv", 3)); !errors.Is(err, want) {
		t.Errorf("MarkInFlight after %s = %v, want %v", what, err, want)
	}
	if err := r.Flush(t.Context()); !errors.Is(err, want) {
		t.Errorf("Flush after %s = %v, want %v", what, err, want)
	}
	if err := l.Close(); !errors.Is(err, want) {
		t.Errorf("Close after %s = %v, want %v", what, err, want)
	}
}
