package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestReview_CLI_ImportOfAFileAlreadyQueuedReportsTheTruth: an import
// --detach queues a file; the same file is then imported without
// --detach (an operator "helping", a cron job's next run). Its planner
// finds every row queued by the first import and leaves it to that one
// (queuedElsewhere, counted Pending), but its own pool works every chunk
// of the target until idle, so it sends those very rows and they end
// created. Its summary still counts them "not reached" (Pending: the
// ledger's counts are read for its own run only) and it exits 1, though
// every row of its file was created, as the ledger says.
func TestReview_CLI_ImportOfAFileAlreadyQueuedReportsTheTruth(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	var csv strings.Builder
	csv.WriteString("email,type\n")
	for i := range 20 {
		fmt.Fprintf(&csv, "q%02d@example.com,INDIVIDUAL\n", i)
	}
	writeFile(t, dir, "in.csv", csv.String())
	if r := runBin(t, dir, env, "", "import", "--detach", "--rps", "0", "in.csv"); r.code != 0 {
		t.Fatalf("import --detach: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := runBin(t, dir, env, "", "import", "--rps", "0", "in.csv")
	rows := ledgerRows(t, ledgerURL)
	created := 0
	for _, lr := range rows {
		if lr.status == "created" {
			created++
		}
	}
	if created != 20 {
		t.Fatalf("ledger: %d of 20 rows created after the second import\n%s%s", created, r.stdout, r.stderr)
	}
	if r.code != 0 || strings.Contains(r.stdout, "not reached") {
		t.Errorf("second import: exit %d, every row of its file created by its own pool; want exit 0 and nothing \"not reached\"\n%s%s", r.code, r.stdout, r.stderr)
	}
}
