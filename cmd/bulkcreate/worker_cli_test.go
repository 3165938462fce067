package main

import (
	"maps"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestCLI_AWorkerWhoseTargetHasNoImportSaysSo: a worker whose environment
// selects a target the ledger holds no import of (a typo in
// RIPIO_CLIENT_ID, or the ledger of another schema) sends nothing. With
// --exit-when-idle it says so on one line of stderr, naming its target,
// the ledger (no password) and the targets the ledger holds imports of,
// and exits 3: a Job retries it (an import may come), a script sees it
// failed. It adds no target to the ledger. Without --exit-when-idle it
// waits for work and warns once. The worker of the import's target works.
func TestCLI_AWorkerWhoseTargetHasNoImportSaysSo(t *testing.T) {
	t.Parallel()
	ledgerURL, secret := postgresLedgerURL(t)
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	right := "client=" + env["RIPIO_CLIENT_ID"]

	r := runBin(t, dir, env, "", "worker", "--exit-when-idle")
	if r.code != exitAborted || !strings.Contains(r.stderr, "holds no import for target") || !strings.Contains(r.stderr, "no import at all") {
		t.Errorf("worker --exit-when-idle on an empty ledger: exit %d, want %d saying the ledger holds no import\n%s%s", r.code, exitAborted, r.stdout, r.stderr)
	}
	writeFile(t, dir, "in.csv", "email,type\nw1@example.com,INDIVIDUAL\nw2@example.com,INDIVIDUAL\n")
	if r := runBin(t, dir, env, "", "import", "--detach", "--rps", "0", "in.csv"); r.code != 0 {
		t.Fatalf("import --detach: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	typo := maps.Clone(env)
	typo["RIPIO_CLIENT_ID"] += "x"
	r = runBin(t, dir, typo, "", "worker", "--exit-when-idle")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"holds no import for target", "client=" + typo["RIPIO_CLIENT_ID"], shownLedger(ledgerURL), right} {
		if !strings.Contains(last, want) {
			t.Errorf("worker --exit-when-idle of a target with no import: stderr's last line lacks %q\n%s", want, r.stderr)
		}
	}
	if r.code != exitAborted || strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("worker --exit-when-idle of a target with no import: exit %d, want %d, and no password shown\n%s%s", r.code, exitAborted, r.stdout, r.stderr)
	}
	conn, schema := ledgerConn(t, ledgerURL)
	var targets int
	if err := conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM `+schema+`.targets`).Scan(&targets); err != nil {
		t.Fatal(err)
	}
	if targets != 1 {
		t.Errorf("ledger has %d targets after the mistyped worker, want 1 (the import's)", targets)
	}

	waiting := startProc(t, dir, typo, "worker")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM `+schema+`.workers`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiting worker did not start in a minute")
		}
	}
	waiting.cmd.Process.Signal(syscall.SIGINT)
	waiting.wait(t, time.Minute)
	if n := strings.Count(waiting.errb.String(), "no import for target"); n != 1 || !strings.Contains(waiting.errb.String(), "level=WARN") {
		t.Errorf("worker without --exit-when-idle of a target with no import: said so %d times, want once as a warning\n%s", n, waiting.errb.String())
	}

	if r := runBin(t, dir, env, "", "worker", "--exit-when-idle"); r.code != 0 || len(srv.Customers()) != 2 {
		t.Errorf("worker of the import's target: exit %d, %d customers; want 0 and 2\n%s%s", r.code, len(srv.Customers()), r.stdout, r.stderr)
	}
}

// TestCLI_AWorkerRefusedItsCredentialsSaysSoNotThatTheImportAborted: a
// worker whose secret the server refuses stops (exit 3) and names the
// cause; the import it worked for goes on for other workers, so the
// worker's summary does not say it aborted.
func TestCLI_AWorkerRefusedItsCredentialsSaysSoNotThatTheImportAborted(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	queueFile(t, dir, env, 5, "cred", "0")
	env["RIPIO_CLIENT_SECRET"] = "wrong-s3cr3t"
	r := runBin(t, dir, env, "", "worker", "--exit-when-idle")
	if r.code != 3 {
		t.Fatalf("worker with a wrong secret: exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "stopped by: the server refused the credentials") || strings.Contains(r.stdout+r.stderr, "import aborted") {
		t.Errorf("worker summary: want the cause, not that the import aborted:\n%s%s", r.stdout, r.stderr)
	}
}
