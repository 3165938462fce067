package main

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

func genRows(n int) (string, []string) {
	var b strings.Builder
	b.WriteString("email,type\n")
	emails := make([]string, n)
	for i := range n {
		emails[i] = fmt.Sprintf("crash%05d@example.com", i)
		fmt.Fprintf(&b, "%s,INDIVIDUAL\n", emails[i])
	}
	return b.String(), emails
}

// startBin starts the built command without waiting for it.
func startBin(t *testing.T, dir string, env map[string]string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out, &errb
}

func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// assertAgree checks that the server holds every email exactly once and
// that the ledger records each as created or exists, with nothing in flight.
func assertAgree(t *testing.T, srv *sandbox.Server, ledgerPath string, emails []string) {
	t.Helper()
	count := map[string]int{}
	for _, c := range srv.Customers() {
		count[c.Email]++
	}
	if got := len(srv.Customers()); got != len(emails) {
		t.Errorf("server holds %d customers, want %d", got, len(emails))
	}
	db, err := sql.Open("sqlite3", "file:"+ledgerPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	status := map[string]string{}
	rows, err := db.Query(`SELECT email, status, customer_id_sent FROM rows`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var e, s, id string
		if err := rows.Scan(&e, &s, &id); err != nil {
			t.Fatal(err)
		}
		status[e] = s
		if id != importer.CustomerIDFor(e) {
			t.Errorf("ledger customerId of %s = %s, want the derived %s", e, id, importer.CustomerIDFor(e))
		}
	}
	for _, e := range emails {
		if count[e] != 1 {
			t.Errorf("server has %s %d times, want 1", e, count[e])
		}
		if s := status[e]; s != "created" && s != "exists" {
			t.Errorf("ledger status of %s = %q, want created or exists", e, s)
		}
	}
}

func TestCLI_SIGKILLRepeatedlyThenRerunToCompletion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, emails := genRows(1000)
	writeFile(t, dir, "in.csv", data)
	srv, env := newServer(t, sandbox.Options{Latency: 5 * time.Millisecond, LatencyJitter: 20 * time.Millisecond})
	ledgerPath := filepath.Join(dir, "bulkcreate.db")
	rng := rand.New(rand.NewPCG(1, 2))
	midRun := 0
	for i := range 5 {
		before := len(srv.Customers())
		cmd, _, _ := startBin(t, dir, env, "import", "--quiet", "--rps", "300", "--concurrency", "16", "in.csv")
		// Kill at a random moment once this run is sending.
		deadline := time.Now().Add(10 * time.Second)
		for len(srv.Customers()) < before+10 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		held := len(srv.Customers())
		if exitCodeOf(err) == -int(syscall.SIGKILL) && held < len(emails) {
			midRun++
		}
		t.Logf("run %d: exit %d; server holds %d", i, exitCodeOf(err), held)
	}
	if midRun < 3 {
		t.Fatalf("only %d kills landed mid-run; the test proves nothing", midRun)
	}
	r := runBin(t, dir, env, "", "import", "--quiet", "--rps", "0", "in.csv")
	if r.code != 0 {
		t.Fatalf("final run: exit %d, want 0\n%s%s", r.code, r.stdout, r.stderr)
	}
	assertAgree(t, srv, ledgerPath, emails)
}

func TestCLI_SIGINTStopsSoftlyAndRerunFinishes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data, emails := genRows(300)
	writeFile(t, dir, "in.csv", data)
	srv, env := newServer(t, sandbox.Options{Latency: 50 * time.Millisecond})
	ledgerPath := filepath.Join(dir, "bulkcreate.db")

	cmd, out, errb := startBin(t, dir, env, "import", "--rps", "100", "--concurrency", "8", "in.csv")
	deadline := time.Now().Add(10 * time.Second)
	for len(srv.Customers()) < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sentAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := exitCodeOf(cmd.Wait())
	if code != 130 {
		t.Fatalf("exit after SIGINT = %d, want 130\n%s%s", code, out, errb)
	}
	if d := time.Since(sentAt); d > 5*time.Second {
		t.Errorf("soft stop took %v, want within the request timeout", d)
	}
	if !strings.Contains(out.String(), "interrupted") || !strings.Contains(out.String(), "not started") ||
		!strings.Contains(errb.String(), "finishes the requests in flight") {
		t.Errorf("output after SIGINT lacks the summary or the notice:\n%s%s", out, errb)
	}
	// Everything the server saw is in the ledger, and nothing is left in flight.
	db, err := sql.Open("sqlite3", "file:"+ledgerPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var inFlight, done int
	db.QueryRow(`SELECT COUNT(*) FILTER (WHERE status = 'in_flight'), COUNT(*) FILTER (WHERE status IN ('created','exists')) FROM rows`).Scan(&inFlight, &done)
	var outcome string
	db.QueryRow(`SELECT outcome FROM runs ORDER BY id DESC LIMIT 1`).Scan(&outcome)
	db.Close()
	if inFlight != 0 || done != len(srv.Customers()) || outcome != "interrupted" {
		t.Errorf("ledger after SIGINT: %d in flight, %d done, run %q; want 0, %d (the server's count), interrupted",
			inFlight, done, outcome, len(srv.Customers()))
	}
	if done == len(emails) {
		t.Fatalf("the import finished before the signal; the test proves nothing")
	}
	r := runBin(t, dir, env, "", "import", "--quiet", "--rps", "0", "in.csv")
	if r.code != 0 {
		t.Fatalf("re-run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	assertAgree(t, srv, ledgerPath, emails)
}
