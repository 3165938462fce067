package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// maxErrFile writes in.csv, n rows, and returns the emails of every third,
// for the server to reject.
func maxErrFile(t *testing.T, dir string, n int) (rejected []string) {
	t.Helper()
	var csv strings.Builder
	csv.WriteString("email,type\n")
	for i := range n {
		email := fmt.Sprintf("m%03d@example.com", i)
		fmt.Fprintf(&csv, "%s,INDIVIDUAL\n", email)
		if i%3 == 2 {
			rejected = append(rejected, email)
		}
	}
	writeFile(t, dir, "in.csv", csv.String())
	return rejected
}

// statusCounts counts the ledger's rows by status.
func statusCounts(t *testing.T, ledgerURL string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, r := range ledgerRows(t, ledgerURL) {
		n[r.status]++
	}
	return n
}

// TestCLI_MaxErrorsStopsADetachedImportAcrossItsWorkers: import --detach
// --max-errors 5 queues 100 rows, every third of which the server rejects;
// two workers with --exit-when-idle send them. Once the import's rows
// reach 5 errors, whichever worker sent them, the import stops: far fewer
// than 100 rows are sent, the rest stay queued, report shows the import
// aborted and why, and the workers end as workers do (0, or 1 for the
// rejected rows they took), not with the limit as their own failure. A
// later import of the file sends the rows left.
func TestCLI_MaxErrorsStopsADetachedImportAcrossItsWorkers(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	rejected := maxErrFile(t, dir, 100)
	srv, env := newServer(t, sandbox.Options{RejectEmails: rejected, Latency: 5 * time.Millisecond})
	env[ledgerEnv] = ledgerURL
	if r := runBin(t, dir, env, "", "import", "--detach", "--rps", "0", "--max-errors", "5", "in.csv"); r.code != 0 {
		t.Fatalf("import --detach: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	w1 := startProc(t, dir, env, "worker", "--exit-when-idle", "--concurrency", "2")
	w2 := startProc(t, dir, env, "worker", "--exit-when-idle", "--concurrency", "2")
	for _, w := range []*proc{w1, w2} {
		if code := w.wait(t, time.Minute); code > 1 || strings.Contains(w.stdout.String(), "stopped by") {
			t.Errorf("worker: exit %d; want 0 or 1 (rejected rows taken), not stopped by the import's limit\n%s%s", code, w.stdout.String(), w.errb.String())
		}
	}
	sent := srv.Stats().Requests
	counts := statusCounts(t, ledgerURL)
	if sent >= 50 || counts["rejected"] < 5 || counts["queued"] < 50 {
		t.Errorf("%d of 100 rows sent, ledger %v; want the limit (5 rejected, about 15 rows) and what was in flight sent, under 50, the rest queued", sent, counts)
	}
	rep := runBin(t, dir, env, "", "report")
	if !strings.Contains(rep.stdout, "aborted") || !strings.Contains(rep.stdout, "stopped by:") || !strings.Contains(rep.stdout, "--max-errors 5") {
		t.Errorf("report: want the import aborted, stopped by --max-errors 5\n%s%s", rep.stdout, rep.stderr)
	}

	r := runBin(t, dir, env, "", "import", "--rps", "0", "in.csv")
	counts = statusCounts(t, ledgerURL)
	if counts["created"] != 100-len(rejected) || counts["queued"] != 0 {
		t.Errorf("after a second import of the file: ledger %v; want %d created, none queued\n%s%s", counts, 100-len(rejected), r.stdout, r.stderr)
	}
}

// TestCLI_MaxErrorsStopsAFleetImportWithoutDetach: import --max-errors 5
// on a PostgreSQL ledger, without --detach, whose pool sends its rows. It
// exits 3 with a "stopped by:" line naming --max-errors, as a SQLite
// import does, and the ledger ends the import aborted with its unsent rows
// queued, so that no worker sends them later.
func TestCLI_MaxErrorsStopsAFleetImportWithoutDetach(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	rejected := maxErrFile(t, dir, 100)
	srv, env := newServer(t, sandbox.Options{RejectEmails: rejected, Latency: 5 * time.Millisecond})
	env[ledgerEnv] = ledgerURL
	r := runBin(t, dir, env, "", "import", "--rps", "0", "--concurrency", "2", "--max-errors", "5", "in.csv")
	if r.code != exitAborted || !strings.Contains(r.stdout, "stopped by:") || !strings.Contains(r.stdout, "--max-errors 5") {
		t.Errorf("import: exit %d; want %d, stopped by --max-errors 5\n%s%s", r.code, exitAborted, r.stdout, r.stderr)
	}
	rep := runBin(t, dir, env, "", "report", "--format", "json")
	if !strings.Contains(rep.stdout, `"outcome": "aborted"`) || !strings.Contains(rep.stdout, `"stoppedBy"`) {
		t.Errorf("report: want the import aborted, with stoppedBy\n%s%s", rep.stdout, rep.stderr)
	}
	if sent, counts := srv.Stats().Requests, statusCounts(t, ledgerURL); sent >= 50 || counts["queued"] < 50 {
		t.Errorf("%d of 100 rows sent, ledger %v; want under 50 sent, the rest queued", sent, counts)
	}
}
