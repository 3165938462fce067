package main

import (
	"database/sql"
	"encoding/csv"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestCLI_ServerAssignedIDsHoldRowsInDoubt: at a target that assigns its own
// customer ids, an import records the server's ids and says so once; rows
// whose answer was lost stay in_doubt, neither retried in the run nor sent
// by the next one, so no person is created twice; failures tells the
// operator to check them, and --resend-in-doubt sends them.
func TestCLI_ServerAssignedIDsHoldRowsInDoubt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "server.db")
	// One request at a time and a fixed seed: the first answer arrives, and
	// then about a third of the stored creates lose theirs.
	opts := sandbox.Options{AssignIDs: true, DropAfterCommit: 0.3, Seed: 7, DBPath: db}
	srv, env := newServer(t, opts)
	const n = 30
	writeFile(t, dir, "in.csv", peopleCSV("user", n))
	args := oneAtATime("in.csv")

	r := runBin(t, dir, env, "", args...)
	if r.code != 1 {
		t.Fatalf("first import: exit %d, want 1 (rows in doubt)\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := strings.Count(r.stderr, "assigns its own customer ids"); got != 1 {
		t.Errorf("first import said %d times on stderr that the target assigns its ids, want once\n%s", got, r.stderr)
	}
	if !strings.Contains(r.stdout, "--resend-in-doubt") {
		t.Errorf("first import's summary does not point to --resend-in-doubt:\n%s", r.stdout)
	}
	inDoubt := ledgerCount(t, filepath.Join(dir, "bulkcreate.db"), "status = 'in_doubt'")
	created := ledgerCount(t, filepath.Join(dir, "bulkcreate.db"), "status = 'created' AND customer_id LIKE 'srv-%' AND customer_id != customer_id_sent")
	if inDoubt == 0 || created+inDoubt != n {
		t.Fatalf("ledger after the first import: %d created under the server's id, %d in doubt; want %d in all, some in doubt", created, inDoubt, n)
	}
	assertOnePerEmail(t, srv, n)

	before := srv.Stats().Requests
	r = runBin(t, dir, env, "", args...)
	if r.code != 1 || srv.Stats().Requests != before {
		t.Fatalf("second import: exit %d, %d requests; want 1 and none sent\n%s%s", r.code, srv.Stats().Requests-before, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("not sent again (%d in this run)", inDoubt)) {
		t.Errorf("second import's summary does not count %d rows held:\n%s", inDoubt, r.stdout)
	}
	f := runBin(t, dir, env, "", "failures")
	recs, err := csv.NewReader(strings.NewReader(f.stdout)).ReadAll()
	if f.code != 0 || err != nil || len(recs) != inDoubt+1 {
		t.Fatalf("failures: exit %d, %v, %d records; want the %d rows in doubt\n%s%s", f.code, err, len(recs), inDoubt, f.stdout, f.stderr)
	}
	for _, rec := range recs[1:] {
		if rec[3] != "in_doubt" || !strings.Contains(rec[4], "check "+rec[0]+" in Ripio") || !strings.Contains(rec[4], "--resend-in-doubt") {
			t.Errorf("failures row %q: want in_doubt, telling to check the person in Ripio and --resend-in-doubt", rec)
		}
	}
	assertOnePerEmail(t, srv, n)

	// The operator checks: the people are there. A server that refuses a
	// second customer with one email makes the re-sent rows "exists".
	u, _ := url.Parse(srv.URL())
	srv.Close()
	opts.Addr, opts.DropAfterCommit, opts.UniqueEmail = u.Host, 0, true
	srv, err = sandbox.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	r = runBin(t, dir, env, "", append([]string{"import", "--resend-in-doubt"}, args[1:]...)...)
	if r.code != 0 || srv.Stats().Requests != int64(inDoubt) {
		t.Fatalf("import --resend-in-doubt: exit %d, %d requests; want 0 and the %d rows in doubt sent\n%s%s", r.code, srv.Stats().Requests, inDoubt, r.stdout, r.stderr)
	}
	assertOnePerEmail(t, srv, n)
}

// ledgerCount counts the ledger's rows where cond holds.
func ledgerCount(t *testing.T, path, cond string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM rows WHERE ` + cond).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func assertOnePerEmail(t *testing.T, srv *sandbox.Server, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, c := range srv.Customers() {
		seen[strings.ToLower(c.Email)]++
	}
	for e, k := range seen {
		if k > 1 {
			t.Errorf("server holds %s %d times, want once", e, k)
		}
	}
	if len(seen) != n {
		t.Errorf("server holds %d people, want %d", len(seen), n)
	}
}

// TestCLI_RowsInDoubtWaitUntilAnAnswerShowsTheTarget: an import whose every
// answer was lost, at a server that assigns its own ids, is run again with
// the file grown by new rows: the new rows go first, their answers show
// the server's ids, and the rows in doubt are held, so nobody is created
// twice; the summary says why they were not sent.
func TestCLI_RowsInDoubtWaitUntilAnAnswerShowsTheTarget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := sandbox.Options{AssignIDs: true, DropAfterCommit: 1, Seed: 7, DBPath: filepath.Join(dir, "server.db")}
	srv, env := newServer(t, opts)
	writeFile(t, dir, "in.csv", peopleCSV("lost", 10))
	args := oneAtATime("in.csv")
	r := runBin(t, dir, env, "", args...)
	if n := ledgerCount(t, filepath.Join(dir, "bulkcreate.db"), "status = 'in_doubt'"); n != 10 {
		t.Fatalf("first import (every answer lost): %d rows in doubt, want 10\n%s%s", n, r.stdout, r.stderr)
	}

	u, _ := url.Parse(srv.URL())
	srv.Close()
	opts.Addr, opts.DropAfterCommit = u.Host, 0
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	writeFile(t, dir, "in.csv", peopleCSV("lost", 10)+strings.TrimPrefix(peopleCSV("new", 10), "email,type\n"))
	r = runBin(t, dir, env, "", args...)
	if r.code != 1 {
		t.Fatalf("second import: exit %d, want 1 (rows in doubt held)\n%s%s", r.code, r.stdout, r.stderr)
	}
	assertOnePerEmail(t, srv, 20)
	if created := ledgerCount(t, filepath.Join(dir, "bulkcreate.db"), "status = 'created'"); created != 10 {
		t.Errorf("second import: %d rows created, want the 10 new ones", created)
	}
	if !strings.Contains(r.stdout, "not sent again (10 in this run)") {
		t.Errorf("second import's summary does not count the 10 rows held:\n%s", r.stdout)
	}
}

// TestCLI_MarkExistingClosesRowsInDoubtFromTheFailuresFile: at a target
// that assigns its own ids, the operator finds the people whose rows are
// in doubt in Ripio and imports the failures file with --mark-existing:
// the rows end exists, nothing is sent, and the run exits 0.
func TestCLI_MarkExistingClosesRowsInDoubtFromTheFailuresFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{AssignIDs: true, DropAfterCommit: 1, Seed: 3})
	writeFile(t, dir, "in.csv", peopleCSV("found", 5))
	runBin(t, dir, env, "", oneAtATime("in.csv")...)
	db := filepath.Join(dir, "bulkcreate.db")
	if n := ledgerCount(t, db, "status = 'in_doubt'"); n != 5 {
		t.Fatalf("first import (every answer lost): %d rows in doubt, want 5", n)
	}
	f := runBin(t, dir, env, "", "failures")
	if f.code != 0 {
		t.Fatalf("failures: exit %d\n%s", f.code, f.stderr)
	}
	writeFile(t, dir, "found.csv", f.stdout)
	before := srv.Stats().Requests
	r := runBin(t, dir, env, "", "import", "--mark-existing", "found.csv")
	if r.code != 0 || srv.Stats().Requests != before {
		t.Fatalf("import --mark-existing: exit %d, %d requests; want 0 and none\n%s%s", r.code, srv.Stats().Requests-before, r.stdout, r.stderr)
	}
	if inDoubt, exists := ledgerCount(t, db, "status = 'in_doubt'"), ledgerCount(t, db, "status = 'exists'"); inDoubt != 0 || exists != 5 {
		t.Errorf("ledger after --mark-existing: %d in doubt, %d exists; want 0 and 5", inDoubt, exists)
	}
	if u := runBin(t, dir, env, "", "import", "--mark-existing", "--dry-run", "found.csv"); u.code != 2 {
		t.Errorf("import --mark-existing --dry-run: exit %d, want 2 (a usage error)", u.code)
	}
}

// TestCLI_ADryRunFailsOnlyForRowsTheFileMustFix: a dry run over rows that
// earlier runs left in doubt, held at a target that assigns its own ids,
// exits 0, as the README says: only invalid or duplicate rows make it 1.
func TestCLI_ADryRunFailsOnlyForRowsTheFileMustFix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{AssignIDs: true, DropAfterCommit: 0.5, Seed: 7})
	writeFile(t, dir, "in.csv", peopleCSV("dry", 10))
	runBin(t, dir, env, "", oneAtATime("in.csv")...)
	if n := ledgerCount(t, filepath.Join(dir, "bulkcreate.db"), "status = 'in_doubt'"); n == 0 {
		t.Fatalf("first import left no row in doubt; the test needs some")
	}
	if r := runBin(t, dir, env, "", "import", "--dry-run", "in.csv"); r.code != 0 {
		t.Errorf("import --dry-run over rows held in doubt: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, dir, "bad.csv", "email,type\nnot-an-email,INDIVIDUAL\n")
	if r := runBin(t, dir, env, "", "import", "--dry-run", "bad.csv"); r.code != 1 {
		t.Errorf("import --dry-run of an invalid row: exit %d, want 1", r.code)
	}
}

// TestCLI_MarkExistingOnPostgresSendsNothing: on a PostgreSQL ledger an
// import works the target's queued chunks with its own pool; one with
// --mark-existing has none, and leaves rows other imports queued to their
// workers.
func TestCLI_MarkExistingOnPostgresSendsNothing(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	queueFile(t, dir, env, 5, "q", "0") // 5 rows queued, none sent
	writeFile(t, dir, "found.csv", "email,type\nfound@example.com,INDIVIDUAL\n")
	before := srv.Stats().Requests
	r := runBin(t, dir, env, "", "import", "--mark-existing", "found.csv")
	if sent := srv.Stats().Requests - before; sent != 0 || r.code != 0 {
		t.Errorf("import --mark-existing: %d requests sent, exit %d; want none, 0\n%s%s", sent, r.code, r.stdout, r.stderr)
	}
}

// peopleCSV is a file of n individuals, prefix00@example.com and on.
func peopleCSV(prefix string, n int) string {
	var b strings.Builder
	b.WriteString("email,type\n")
	for i := range n {
		fmt.Fprintf(&b, "%s%02d@example.com,INDIVIDUAL\n", prefix, i)
	}
	return b.String()
}

// oneAtATime is an import of file that sends one request at a time, as
// fast as the server answers, each given 2 s.
func oneAtATime(file string) []string {
	return []string{"import", "--rps", "0", "--concurrency", "1", "--timeout", "2s", file}
}

// TestCLI_ADryRunSaysWhichRowsToSendWaitOnTheTarget: rows in doubt at a
// target no answer has shown to keep the ids sent are counted to send,
// and the dry run says how many of them wait on that.
func TestCLI_ADryRunSaysWhichRowsToSendWaitOnTheTarget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{DropAfterCommit: 1, Seed: 5})
	writeFile(t, dir, "in.csv", peopleCSV("wait", 4))
	runBin(t, dir, env, "", oneAtATime("in.csv")...)
	r := runBin(t, dir, env, "", "import", "--dry-run", "in.csv")
	if !regexp.MustCompile(`of them in doubt, sent once an answer shows the target keeps the ids sent \(or one alone, to find out\) +4`).MatchString(r.stdout) {
		t.Errorf("import --dry-run over 4 rows in doubt at a target of unknown ids: want them counted as waiting on it\n%s%s", r.stdout, r.stderr)
	}
}
