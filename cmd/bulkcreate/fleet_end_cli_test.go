package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestCLI_FleetImportOfAFileAlreadyQueuedCountsWhatItsPoolEnded: an import
// --detach queues a file; the same file is then imported without --detach
// (an operator "helping", a cron job's next run). Its planner finds every
// row queued by the first import and leaves it to that one, but its own
// pool works every chunk of the target until idle, so it sends those very
// rows and they end created. Its summary counts them as the ledger has
// them in the end (created), not "not reached", and it exits 0.
func TestCLI_FleetImportOfAFileAlreadyQueuedCountsWhatItsPoolEnded(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	queueFile(t, dir, env, 20, "q", "0")
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

// TestCLI_AnInterruptedDetachedLoadExitsInterruptedAndEndsSo: import
// --detach of a large file is interrupted (SIGINT) while loading; workers
// then send what it queued. It exits interrupted, not 0 with "loaded", and
// the ledger ends the import interrupted, not completed, once workers have
// sent what it queued: its file was only partly read.
func TestCLI_AnInterruptedDetachedLoadExitsInterruptedAndEndsSo(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	var csv strings.Builder
	csv.WriteString("email,type\n")
	const n = 300000
	for i := range n {
		fmt.Fprintf(&csv, "big%06d@example.com,INDIVIDUAL\n", i)
	}
	writeFile(t, dir, "big.csv", csv.String())
	p := startProc(t, dir, env, "import", "--detach", "--rps", "0", "big.csv")
	conn, schema := ledgerConn(t, ledgerURL)
	deadline := time.Now().Add(time.Minute)
	for {
		var chunks int
		err := conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM `+schema+`.chunks`).Scan(&chunks)
		if err == nil && chunks > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no chunk queued after a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	code := p.wait(t, time.Minute)
	var queued int
	if err := conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM `+schema+`.rows`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued >= n {
		t.Fatalf("the load ended before the interrupt (exit %d); make the file larger", code)
	}
	if code != exitInterrupted {
		t.Errorf("import --detach interrupted after queueing %d of %d rows: exit %d, want %d\n%s%s",
			queued, n, code, exitInterrupted, p.stdout.String(), p.errb.String())
	}
	w := startProc(t, dir, env, "worker", "--exit-when-idle", "--rps", "0")
	w.wait(t, 2*time.Minute)
	var outcome string
	if err := conn.QueryRow(t.Context(), `SELECT outcome FROM `+schema+`.runs ORDER BY id LIMIT 1`).Scan(&outcome); err != nil {
		t.Fatal(err)
	}
	if outcome == "completed" {
		t.Errorf("import interrupted after queueing %d of %d rows (exit %d): its run is recorded %q once workers sent them; want interrupted",
			queued, n, code, outcome)
	}
}

// TestCLI_AWorkerWhoseBudgetFailsGivesItsChunksBack: the target's budget
// row goes away while a worker works (an operator clears a stuck pause
// with DELETE FROM budgets; the same holds for any budget statement that
// fails for fleetrate's GiveUp, 30 s). Each row's pacer Wait then fails;
// send puts the row back as the claim found it (queued) and the worker
// stops with the error, giving its chunks back: no row is left queued in
// a chunk marked done, the worker does not exit 0 with rows unsent, and
// the same import again sends them.
func TestCLI_AWorkerWhoseBudgetFailsGivesItsChunksBack(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	writeFile(t, dir, "in.csv", "email,type\nb1@example.com,INDIVIDUAL\nb2@example.com,INDIVIDUAL\nb3@example.com,INDIVIDUAL\nb4@example.com,INDIVIDUAL\n")
	if r := runBin(t, dir, env, "", "import", "--detach", "--rps", "1", "in.csv"); r.code != 0 {
		t.Fatalf("import --detach: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	w := startProc(t, dir, env, "worker", "--exit-when-idle", "--concurrency", "4")
	waitHolding(t, ledgerURL, w.cmd.Process.Pid)
	conn, schema := ledgerConn(t, ledgerURL)
	if _, err := conn.Exec(t.Context(), `DELETE FROM `+schema+`.budgets`); err != nil {
		t.Fatal(err)
	}
	code := w.wait(t, 3*time.Minute)
	var lost, created int
	if err := conn.QueryRow(t.Context(), `SELECT COUNT(*) FILTER (WHERE r.status = 'queued' AND c.done), COUNT(*) FILTER (WHERE r.status = 'created')
		FROM `+schema+`.rows r JOIN `+schema+`.chunks c ON c.id = r.chunk_id`).Scan(&lost, &created); err != nil {
		t.Fatal(err)
	}
	if lost > 0 {
		t.Errorf("%d rows queued in chunks marked done (owed by no chunk: never sent again), %d created", lost, created)
	}
	if created < 4 && code == 0 {
		t.Errorf("worker exit 0 with %d of 4 rows created\n%s%s", created, w.stdout.String(), w.errb.String())
	}
	// The same import again does not send them either: it finds them queued.
	r := runBin(t, dir, env, "", "import", "--rps", "0", "in.csv")
	var after int
	if err := conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM `+schema+`.rows WHERE status = 'created'`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != 4 {
		t.Errorf("after the same import again (exit %d): %d of 4 rows created\n%s%s", r.code, after, r.stdout, r.stderr)
	}
}

// TestCLI_AKilledWorkerLeavesAboutASecondOfRowsInDoubt: a worker marks its
// chunks' rows in flight as its pool takes them, and sizes its pool for the
// target's budget, so that killed it leaves about a second of rows in doubt
// that never left, not whole chunks. At a target that assigns its own ids
// each such row is held for a person to check in Ripio.
func TestCLI_AKilledWorkerLeavesAboutASecondOfRowsInDoubt(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{AssignIDs: true})
	env[ledgerEnv] = ledgerURL
	const n, rps = 80, 5
	queueFile(t, dir, env, n, "k", strconv.Itoa(rps))
	killed := startProc(t, dir, env, "worker", "--lease", "2s")
	time.Sleep(3 * time.Second)
	killed.cmd.Process.Signal(syscall.SIGKILL)
	killed.wait(t, time.Minute)
	time.Sleep(2500 * time.Millisecond) // its lease runs out
	steady := startProc(t, dir, env, "worker", "--exit-when-idle", "--lease", "2s")
	steady.wait(t, 2*time.Minute)
	onServer := map[string]bool{}
	for _, c := range srv.Customers() {
		onServer[c.Email] = true
	}
	neverSent, inDoubt := 0, 0
	for _, r := range ledgerRows(t, ledgerURL) {
		if r.status == "in_doubt" {
			inDoubt++
			if !onServer[r.email] {
				neverSent++
			}
		}
	}
	if inDoubt == 0 {
		t.Fatalf("no row in doubt: the worker was not killed while it held rows")
	}
	if neverSent > 2*rps {
		t.Errorf("%d rows left in doubt (held: the target assigns its ids) that never reached the server, after a worker was killed at %d/s; want about a second's (%d)",
			neverSent, rps, rps)
	}
}

// TestCLI_AClaimHoldsTheLeaseLessThePoll: --lease is the longest a dead
// worker's rows wait, so a claim holds a chunk for the lease less the poll
// in which another process finds a lease that ran out (lease/20, 50ms at
// least): a worker killed just after a claim or a heartbeat has its rows
// taken within --lease, not a poll after it.
func TestCLI_AClaimHoldsTheLeaseLessThePoll(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	env[ledgerEnv] = ledgerURL
	queueFile(t, dir, env, 40, "l", "5")
	const lease = 2 * time.Second
	startProc(t, dir, env, "worker", "--lease", lease.String())
	conn, schema := ledgerConn(t, ledgerURL)
	held := time.Duration(math.MaxInt64) // the shortest hold of a chunk seen
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var secs *float64
		if err := conn.QueryRow(t.Context(), `SELECT EXTRACT(EPOCH FROM min(lease_until - claimed_at))::float8 FROM `+schema+`.chunks
			WHERE lease_until IS NOT NULL`).Scan(&secs); err != nil {
			t.Fatal(err)
		}
		if secs != nil {
			held = min(held, time.Duration(*secs*float64(time.Second)))
		}
	}
	if want := lease - 100*time.Millisecond; held > want {
		t.Errorf("a claim held its chunk %v at the shortest; want %v (--lease %v less the poll)", held, want, lease)
	}
}

// TestCLI_ResendInDoubtOfAFleetImportReachesItsWorkers: at a target that
// assigns its own ids, rows in doubt are held until the operator checks
// them in Ripio and runs import --resend-in-doubt. In fleet mode the
// import queues them, and the workers that send them apply their own
// --resend-in-doubt (default off): so the import queues them owed a send,
// no longer in doubt, and the workers send them.
func TestCLI_ResendInDoubtOfAFleetImportReachesItsWorkers(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{AssignIDs: true})
	env[ledgerEnv] = ledgerURL
	writeFile(t, dir, "in.csv", "email,type\nh1@example.com,INDIVIDUAL\nh2@example.com,INDIVIDUAL\nh3@example.com,INDIVIDUAL\n")
	if r := runBin(t, dir, env, "", "import", "--detach", "--rps", "0", "in.csv"); r.code != 0 {
		t.Fatalf("import --detach: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// An earlier fleet lost every answer: the rows are in doubt, their
	// chunks done, and the ledger knows the target assigns its ids.
	conn, schema := ledgerConn(t, ledgerURL)
	for _, q := range []string{
		`UPDATE ` + schema + `.rows SET status = 'in_doubt', error_message = 'no answer'`,
		`UPDATE ` + schema + `.chunks SET done = true`,
		`UPDATE ` + schema + `.targets SET assigns_ids_since = now()`,
	} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	// The operator checked them in Ripio: none is there. Send them again.
	r := runBin(t, dir, env, "", "import", "--detach", "--resend-in-doubt", "--rps", "0", "in.csv")
	if r.code != 0 || !strings.Contains(r.stdout, "3 rows queued") {
		t.Fatalf("import --detach --resend-in-doubt: exit %d, want 3 rows queued\n%s%s", r.code, r.stdout, r.stderr)
	}
	w := startProc(t, dir, env, "worker", "--exit-when-idle")
	code := w.wait(t, time.Minute)
	if n := len(srv.Customers()); n != 3 {
		t.Errorf("server has %d customers after import --resend-in-doubt and a worker (exit %d); want 3: the import asked to send them again\n%s%s",
			n, code, w.stdout.String(), w.errb.String())
	}
}

// queueFile writes in.csv in dir, n rows of emails prefix000@example.com
// on, and queues it with import --detach --rps rps.
func queueFile(t *testing.T, dir string, env map[string]string, n int, prefix, rps string) {
	t.Helper()
	var csv strings.Builder
	csv.WriteString("email,type\n")
	for i := range n {
		fmt.Fprintf(&csv, "%s%03d@example.com,INDIVIDUAL\n", prefix, i)
	}
	writeFile(t, dir, "in.csv", csv.String())
	if r := runBin(t, dir, env, "", "import", "--detach", "--rps", rps, "in.csv"); r.code != 0 {
		t.Fatalf("import --detach: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
