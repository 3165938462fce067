package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// proc is a command started in the background.
type proc struct {
	cmd          *exec.Cmd
	stdout, errb *bytes.Buffer
	done         chan struct{}
	code         int
}

// startProc starts the built command; the test ends it if it has not ended.
func startProc(t *testing.T, dir string, env map[string]string, args ...string) *proc {
	t.Helper()
	env["PATH"], env["HOME"] = os.Getenv("PATH"), dir
	p := &proc{done: make(chan struct{})}
	p.cmd, p.stdout, p.errb = startBin(t, dir, env, args...)
	go func() {
		defer close(p.done)
		p.code = exitCodeOf(p.cmd.Wait())
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for p to exit, failing the test after d.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		t.Fatalf("%v did not exit within %s\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, d, p.stdout.String(), p.errb.String())
		return -1
	}
}

// TestCLI_FleetSurvivesKillAndPause: an import loads 300 rows (--detach),
// three workers send them to a server that drops 5% of its answers after
// storing the customer; one is killed (SIGKILL) and one stopped (SIGSTOP)
// past its lease while they work. The others take over their chunks once
// the leases run out; the paused one, resumed, stops without recording
// (its lease is lost). Every person exists exactly once on the server,
// and the ledger says so row by row.
func TestCLI_FleetSurvivesKillAndPause(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{DropAfterCommit: 0.05, Latency: 5 * time.Millisecond})
	env[ledgerEnv] = ledgerURL
	const n = 300
	var csv strings.Builder
	csv.WriteString("email,type\n")
	for i := range n {
		fmt.Fprintf(&csv, "p%03d@example.com,INDIVIDUAL\n", i)
	}
	writeFile(t, dir, "in.csv", csv.String())
	// --rps 20: chunks of 10 rows, half a second of sending.
	if r := runBin(t, dir, env, "", "import", "--detach", "--rps", "20", "in.csv"); r.code != 0 || !strings.Contains(r.stdout, "300 rows queued") {
		t.Fatalf("import --detach: exit %d, want 0 and 300 rows queued\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, dir, env, "", "report"); !regexp.MustCompile(`live imports:\n.*\n1 .* sending +300 `).MatchString(r.stdout) {
		t.Errorf("report after import --detach: want its import live, 300 rows left\n%s%s", r.stdout, r.stderr)
	}
	const lease = "3s"
	worker := func() *proc {
		return startProc(t, dir, env, "worker", "--exit-when-idle", "--lease", lease, "--rps", "25", "--concurrency", "4")
	}
	killed, paused, steady := worker(), worker(), worker()
	waitHolding(t, ledgerURL, killed.cmd.Process.Pid, paused.cmd.Process.Pid)
	if r := runBin(t, dir, env, "", "report"); strings.Count(r.stdout, " "+strconv.Itoa(killed.cmd.Process.Pid)+" ")+
		strings.Count(r.stdout, " "+strconv.Itoa(steady.cmd.Process.Pid)+" ") != 2 {
		t.Errorf("report while workers work: want them listed by pid\n%s%s", r.stdout, r.stderr)
	}
	killed.cmd.Process.Signal(syscall.SIGKILL)
	paused.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(7 * time.Second) // over two leases
	paused.cmd.Process.Signal(syscall.SIGCONT)

	if code := paused.wait(t, time.Minute); code != exitAborted || !strings.Contains(paused.stdout.String()+paused.errb.String(), "lease") {
		t.Errorf("paused worker: exit %d, want %d naming its lost lease\n%s%s", code, exitAborted, paused.stdout.String(), paused.errb.String())
	}
	// 1: a row of its own left in doubt (see below); not 3, a stop.
	if code := steady.wait(t, 2*time.Minute); code != 0 && code != exitNotDone {
		t.Errorf("steady worker: exit %d, want 0 or %d\n%s%s", code, exitNotDone, steady.stdout.String(), steady.errb.String())
	}
	killed.wait(t, time.Minute)

	byEmail := map[string][]string{}
	for _, c := range srv.Customers() {
		byEmail[c.Email] = append(byEmail[c.Email], c.CustomerID)
	}
	if len(byEmail) != n {
		t.Errorf("server has %d people, want %d", len(byEmail), n)
	}
	for email, ids := range byEmail {
		if len(ids) != 1 {
			t.Errorf("server has %s %d times: %v", email, len(ids), ids)
		}
	}
	// A row whose answer was lost before its worker had seen the target
	// keep the customerIds sent stays in doubt, by the importer's rules;
	// the server has it, once.
	checkLedger(t, ledgerURL, byEmail, n, "in_doubt")
	// The same import again settles those.
	if r := runBin(t, dir, env, "", "import", "--rps", "0", "in.csv"); r.code != 0 {
		t.Errorf("import again: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	checkLedger(t, ledgerURL, byEmail, n)
	rep := runBin(t, dir, env, "", "report")
	if rep.code != 0 || !strings.Contains(rep.stdout, "completed") {
		t.Errorf("report: exit %d; want the import completed\n%s%s", rep.code, rep.stdout, rep.stderr)
	}
}

// checkLedger checks that the ledger holds n rows, each created, existing
// or in one of also, under the one customerId the server has for its email.
func checkLedger(t *testing.T, ledgerURL string, byEmail map[string][]string, n int, also ...string) {
	t.Helper()
	rows := ledgerRows(t, ledgerURL)
	if len(rows) != n {
		t.Fatalf("ledger has %d rows, want %d", len(rows), n)
	}
	for _, r := range rows {
		ids := byEmail[r.email]
		ok := r.status == "created" || r.status == "exists" || slices.Contains(also, r.status)
		if !ok || len(ids) != 1 || ids[0] != r.customerIDSent {
			t.Errorf("ledger row %s: %s, customerId %s; server: %v", r.email, r.status, r.customerIDSent, ids)
		}
	}
}

// waitHolding waits until each worker of pids holds a chunk.
func waitHolding(t *testing.T, ledgerURL string, pids ...int) {
	t.Helper()
	conn, schema := ledgerConn(t, ledgerURL)
	deadline := time.Now().Add(time.Minute)
	for _, pid := range pids {
		for {
			var n int
			err := conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM `+schema+`.chunks c JOIN `+schema+`.workers w ON w.id = c.owner
				WHERE w.pid = $1 AND NOT c.done AND c.lease_until > now()`, pid).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("worker %d holds no chunk after a minute", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// ledgerConn connects to the ledger at ledgerURL, until the test ends, and
// returns its schema, quoted.
func ledgerConn(t *testing.T, ledgerURL string) (*pgx.Conn, string) {
	t.Helper()
	u, err := url.Parse(ledgerURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, pgx.Identifier{u.Query().Get("search_path")}.Sanitize()
}

type ledgerRow struct{ email, status, customerIDSent string }

// ledgerRows reads every row of the ledger at ledgerURL.
func ledgerRows(t *testing.T, ledgerURL string) []ledgerRow {
	t.Helper()
	conn, schema := ledgerConn(t, ledgerURL)
	rs, err := conn.Query(t.Context(), `SELECT email, status, customer_id_sent FROM `+schema+`.rows ORDER BY email`)
	if err != nil {
		t.Fatal(err)
	}
	var out []ledgerRow
	var r ledgerRow
	if _, err := pgx.ForEachRow(rs, []any{&r.email, &r.status, &r.customerIDSent}, func() error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}
