package main

import (
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// postgresLedgerURL is a URL of the test database (BULKCREATE_TEST_POSTGRES_URL)
// whose search_path names a schema of the test's own, dropped when it
// ends, and whose password is secret (the test cluster trusts anyone, so
// any password works). Without the database the test skips, or fails in CI.
func postgresLedgerURL(t *testing.T) (ledgerURL, secret string) {
	t.Helper()
	base := os.Getenv("BULKCREATE_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("BULKCREATE_TEST_POSTGRES_URL is not set: CI runs the PostgreSQL ledger's tests (.ci/run starts a cluster)")
		}
		t.Skip("BULKCREATE_TEST_POSTGRES_URL is not set; to run: export BULKCREATE_TEST_POSTGRES_URL=$(bash .ci/postgres.sh /tmp/pg | tail -n 1)")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "cli_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	secret = "pg-s3cret-" + hex.EncodeToString(b[:3])
	u.User = url.UserPassword(u.User.Username(), secret)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), secret
}

// TestCLI_PostgresLedger is the README's tour on a PostgreSQL ledger named
// by BULKCREATE_LEDGER: import a file with bad rows, write the failures,
// fix and import them, report; no ledger file is made, no password shown.
func TestCLI_PostgresLedger(t *testing.T) {
	t.Parallel()
	ledgerURL, secret := postgresLedgerURL(t)
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	writeFile(t, dir, "in.csv", "email,type\nana@example.com,INDIVIDUAL\nbeto@example,BUSINESS\ncarla@example.com,PERSON\n")

	r := runBin(t, dir, env, "", "report")
	if r.code != 2 || !strings.Contains(r.stderr, "no ledger") {
		t.Errorf("report before any import: exit %d, stderr %q; want 2, no ledger", r.code, r.stderr)
	}
	r = runBin(t, dir, env, "", "import", "--dry-run", "in.csv")
	if r.code != 1 || !strings.Contains(r.stdout, "to send  1") {
		t.Errorf("dry run before any import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, dir, env, "", "import", "--rps", "0", "in.csv")
	if r.code != 1 {
		t.Fatalf("import: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "bulkcreate failures > fix.csv") {
		t.Errorf("import summary: want its next step without --ledger (the environment names it):\n%s", r.stdout)
	}
	r = runBin(t, dir, env, "", "failures")
	if r.code != 0 {
		t.Fatalf("failures: exit %d\n%s", r.code, r.stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("failures CSV = %q, %v; want a header and 2 rows", recs, err)
	}
	fixed := strings.NewReplacer("beto@example,", "beto@example.com,", ",PERSON,", ",INDIVIDUAL,").Replace(r.stdout)
	writeFile(t, dir, "fix.csv", fixed)
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "fix.csv"); r.code != 0 {
		t.Fatalf("import fix.csv: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(srv.Customers()); n != 3 {
		t.Errorf("server customers = %d, want 3", n)
	}

	// --ledger names the same ledger; a password in it is never printed.
	delete(env, ledgerEnv)
	r = runBin(t, dir, env, "", "report", "--ledger", ledgerURL)
	if r.code != 0 || !strings.Contains(r.stdout, "created  3") {
		t.Errorf("report --ledger URL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r2 := runBin(t, dir, env, "", "report", "--format", "json", "--ledger", ledgerURL)
	var rep struct {
		Rows   int            `json:"rows"`
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(r2.stdout), &rep); err != nil || rep.Rows != 3 || rep.Counts["created"] != 3 {
		t.Errorf("report --format json = %+v, %v; want 3 rows, all created", rep, err)
	}
	writeFile(t, dir, "more.csv", "email,type\nnot-an-email,INDIVIDUAL\n")
	r3 := runBin(t, dir, env, "", "import", "--rps", "0", "--ledger", ledgerURL, "more.csv")
	if r3.code != 1 || !strings.Contains(r3.stdout, "--ledger postgres://") {
		t.Errorf("import --ledger URL of an invalid row: exit %d, want 1 and its next step with --ledger\n%s%s", r3.code, r3.stdout, r3.stderr)
	}
	for _, out := range []string{r.stdout, r.stderr, r2.stdout, r3.stdout, r3.stderr} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows the ledger URL's password:\n%s", out)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.db")); len(files) != 0 {
		t.Errorf("files %v made beside the input; want none (the ledger is in PostgreSQL)", files)
	}
}

// TestCLI_PostgresLedgerMatchesSQLite imports samples/messy.csv (bad
// encodings, quotes, duplicates) into a SQLite ledger and a PostgreSQL one,
// each against a server of its own: failures writes the same bytes, and
// report the same counts.
func TestCLI_PostgresLedgerMatchesSQLite(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	messy, err := os.ReadFile("../../samples/messy.csv")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "messy.csv", string(messy))
	type out struct{ failures, counts string }
	var got []out
	for _, l := range []string{"sqlite.db", ledgerURL} {
		_, env := newServer(t, sandbox.Options{})
		r := runBin(t, dir, env, "", "import", "--rps", "0", "--quiet", "--ledger", l, "messy.csv")
		if r.code != 1 {
			t.Fatalf("import --ledger %s: exit %d, want 1\n%s%s", shownLedger(l), r.code, r.stdout, r.stderr)
		}
		f := runBin(t, dir, env, "", "failures", "--ledger", l)
		rep := runBin(t, dir, env, "", "report", "--format", "json", "--ledger", l)
		var counts struct {
			Rows   int            `json:"rows"`
			Counts map[string]int `json:"counts"`
		}
		if err := json.Unmarshal([]byte(rep.stdout), &counts); err != nil {
			t.Fatalf("report --ledger %s: %v\n%s", shownLedger(l), err, rep.stdout)
		}
		got = append(got, out{f.stdout, fmt.Sprint(counts)})
	}
	if got[0].failures != got[1].failures {
		t.Errorf("failures differ:\nSQLite:\n%s\nPostgreSQL:\n%s", got[0].failures, got[1].failures)
	}
	if got[0].counts != got[1].counts {
		t.Errorf("report counts: SQLite %s, PostgreSQL %s", got[0].counts, got[1].counts)
	}
}

// TestCLI_PostgresImportSetsTheBudget: on a PostgreSQL ledger, import's
// --rps is the target's budget for every process, kept in the ledger, and
// the import is paced by it.
func TestCLI_PostgresImportSetsTheBudget(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type\nana@example.com,INDIVIDUAL\nbeto@example.com,BUSINESS\ncarla@example.com,INDIVIDUAL\n")
	for _, rps := range []string{"40", "25"} {
		r := runBin(t, dir, env, "", "import", "--quiet", "--rps", rps, "--ledger", ledgerURL, "in.csv")
		if r.code != 0 {
			t.Fatalf("import --rps %s: exit %d\n%s%s", rps, r.code, r.stdout, r.stderr)
		}
		conn, err := pgx.Connect(t.Context(), ledgerURL)
		if err != nil {
			t.Fatal(err)
		}
		var ceiling float64
		var reserved int64
		err = conn.QueryRow(t.Context(), `SELECT ceiling, reserved FROM budgets`).Scan(&ceiling, &reserved)
		conn.Close(t.Context())
		if err != nil || fmt.Sprint(ceiling) != rps {
			t.Errorf("after import --rps %s: the budget's ceiling = %v (%v), want %s", rps, ceiling, err, rps)
		}
		if rps == "40" && reserved < 3 {
			t.Errorf("after importing 3 rows: %d slots reserved from the budget, want 3 at least", reserved)
		}
	}
	if n := len(srv.Customers()); n != 3 {
		t.Errorf("server customers = %d, want 3", n)
	}
}

// TestCLI_PostgresImportSaysWhyRowsWereNotDone: an import on a PostgreSQL
// ledger ends, as one on SQLite does, with why rows were not done, and its
// --summary-json names its run and those reasons, whichever process sent
// the rows.
func TestCLI_PostgresImportSaysWhyRowsWereNotDone(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{RejectEmails: []string{"r1@example.com", "r2@example.com"}})
	env[ledgerEnv] = ledgerURL
	writeFile(t, dir, "in.csv", "email,type\nok1@example.com,INDIVIDUAL\nr1@example.com,INDIVIDUAL\nr2@example.com,INDIVIDUAL\nok2@example.com,INDIVIDUAL\n")
	r := runBin(t, dir, env, "", "import", "--rps", "0", "--summary-json", "s.json", "in.csv")
	if r.code != 1 {
		t.Fatalf("import: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "why rows were not done:") || !strings.Contains(r.stdout, "2 rejected:") {
		t.Errorf("summary: want why 2 rows were rejected:\n%s", r.stdout)
	}
	data, err := os.ReadFile(filepath.Join(dir, "s.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		RunID   int64 `json:"runId"`
		Reasons []struct {
			Status string `json:"status"`
			Count  int64  `json:"count"`
		} `json:"reasons"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s.RunID == 0 || len(s.Reasons) != 1 || s.Reasons[0].Status != "rejected" || s.Reasons[0].Count != 2 {
		t.Errorf("--summary-json: runId %d, reasons %+v; want the run's id and 2 rejected\n%s", s.RunID, s.Reasons, data)
	}
}
