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
	time.Sleep(1500 * time.Millisecond)
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

type ledgerRow struct{ email, status, customerIDSent string }

// ledgerRows reads every row of the ledger at ledgerURL.
func ledgerRows(t *testing.T, ledgerURL string) []ledgerRow {
	t.Helper()
	u, err := url.Parse(ledgerURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rs, err := conn.Query(ctx, `SELECT email, status, customer_id_sent FROM `+pgx.Identifier{u.Query().Get("search_path")}.Sanitize()+`.rows ORDER BY email`)
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

func TestCLI_FleetUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{})
	writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\n")
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"SQLiteLedger", env, []string{"worker", "--ledger", "x.db"}, "postgres://"},
		{"EmbeddedTarget", map[string]string{}, []string{"worker", "--ledger", "postgres://127.0.0.1:1/db"}, "RIPIO_BASE_URL"},
		{"ShortLease", env, []string{"worker", "--ledger", "postgres://127.0.0.1:1/db", "--lease", "10ms"}, "--lease"},
		{"DetachOnSQLite", env, []string{"import", "--detach", "--ledger", "x.db", "in.csv"}, "--detach"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runBin(t, dir, c.env, "", c.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%v: exit %d, stderr %q; want %d naming %s", c.args, r.code, r.stderr, exitUsage, c.want)
			}
		})
	}
}

// TestCLI_FleetImportCountsRowsOtherProcessesSent: an import on a
// PostgreSQL ledger works its rows beside a worker, ends when every row
// has ended, and its summary counts the rows the worker sent too.
func TestCLI_FleetImportCountsRowsOtherProcessesSent(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	dir := t.TempDir()
	srv, env := newServer(t, sandbox.Options{Latency: 5 * time.Millisecond})
	env[ledgerEnv] = ledgerURL
	var csv strings.Builder
	csv.WriteString("email,type\n")
	for i := range 200 {
		fmt.Fprintf(&csv, "q%03d@example.com,INDIVIDUAL\n", i)
	}
	writeFile(t, dir, "in.csv", csv.String())
	w := startProc(t, dir, env, "worker", "--lease", "2s", "--rps", "50")
	r := runBin(t, dir, env, "", "import", "--rps", "50", "in.csv")
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.wait(t, time.Minute)
	if r.code != 0 || !regexp.MustCompile(`created +200\b`).MatchString(r.stdout) {
		t.Errorf("import beside a worker: exit %d, want 0 and 200 created\n%s%s", r.code, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`(\d+) rows taken, (\d+) created`).FindStringSubmatch(w.stdout.String())
	if m == nil || m[1] == "0" || m[1] != m[2] {
		t.Errorf("worker beside the import: want it to have created rows of it\n%s%s", w.stdout.String(), w.errb.String())
	}
	if n := len(srv.Customers()); n != 200 {
		t.Errorf("server customers = %d, want 200", n)
	}
}
