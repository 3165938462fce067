package postgres

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLedger_SurvivesSIGKILL kills a writing child process at random
// moments and checks, each time, that everything the child saw committed
// is there, and that the rows it left in flight become in_doubt at the
// next StartRun, which its dead connection's lock does not refuse.
func TestLedger_SurvivesSIGKILL(t *testing.T) {
	if os.Getenv("LEDGER_PG_CRASH_CHILD") == "1" {
		crashChild(t, os.Getenv("LEDGER_PG_CRASH_SCHEMA"), os.Getenv("LEDGER_PG_CRASH_ROUND"))
		return
	}
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	for round := range 3 {
		killAfter := 100 + rng.IntN(800)
		marked, recorded := runAndKill(t, schema, round, killAfter)
		checkAfterCrash(t, url, schema, round, marked, recorded)
	}
}

// runAndKill runs a child writing to schema and SIGKILLs it once it has
// reported killAfter lines. It returns the keys the child reported marked
// in flight, and the statuses it reported recorded.
func runAndKill(t *testing.T, schema string, round, killAfter int) (marked []string, recorded map[string]Status) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLedger_SurvivesSIGKILL$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LEDGER_PG_CRASH_CHILD=1", "LEDGER_PG_CRASH_SCHEMA="+schema, fmt.Sprintf("LEDGER_PG_CRASH_ROUND=%d", round))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	recorded = map[string]Status{}
	lines := bufio.NewScanner(stdout)
	n := 0
	for lines.Scan() {
		n++
		if n == killAfter {
			cmd.Process.Kill() // SIGKILL
		}
		// Lines already in the pipe were written after their commit too.
		switch kind, rest, _ := strings.Cut(lines.Text(), " "); kind {
		case "M":
			marked = append(marked, rest)
		case "R":
			key, st, _ := strings.Cut(rest, " ")
			recorded[key] = Status(st)
		default:
			t.Errorf("round %d: child said %q", round, lines.Text())
		}
	}
	err = cmd.Wait()
	if n < killAfter {
		t.Fatalf("round %d: child ended after %d lines (%v), before it was killed; stderr:\n%s", round, n, err, stderr.String())
	}
	if !strings.Contains(fmt.Sprint(err), "killed") {
		t.Fatalf("round %d: child ended with %v, want killed; stderr:\n%s", round, err, stderr.String())
	}
	return marked, recorded
}

func checkAfterCrash(t *testing.T, url, schema string, round int, marked []string, recorded map[string]Status) {
	t.Helper()
	l, err := Open(t.Context(), url, Options{Schema: schema})
	if err != nil {
		t.Fatalf("round %d: Open after SIGKILL = %v", round, err)
	}
	defer l.Close()
	got := lookup(t, l, targetA, marked...)
	for _, k := range marked {
		p, ok := got[k]
		switch {
		case !ok:
			t.Errorf("round %d: Lookup(%s) found nothing; the child saw its MarkInFlight commit", round, k)
		case recorded[k] != "" && p.Status != recorded[k]:
			t.Errorf("round %d: Lookup(%s).Status = %q, want %q: the child saw it flushed", round, k, p.Status, recorded[k])
		}
	}
	// A commit the child sent before it died may still land: the server
	// notices a dead client only when it reads its socket. Count once the
	// child's connections are gone.
	waitGone(t, l, childApp(schema))
	var inFlight int64 // in flight in the ledger, reported or not
	if err := l.pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM rows WHERE status = 'in_flight'`).Scan(&inFlight); err != nil {
		t.Fatal(err)
	}

	// The server ends the dead child's connection, and drops its lock, a
	// moment after the socket closed.
	var r *Run
	for range 100 {
		if r, err = l.StartRun(t.Context(), RunInfo{Target: targetA, SourceFile: "check.csv"}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("round %d: StartRun after SIGKILL = %v", round, err)
	}
	if r.Recovered != inFlight {
		t.Errorf("round %d: StartRun().Recovered = %d, want %d", round, r.Recovered, inFlight)
	}
	for k, p := range lookup(t, l, targetA, marked...) {
		if p.Status == InFlight {
			t.Errorf("round %d: Lookup(%s).Status after StartRun = in_flight, want in_doubt", round, k)
		}
	}
	runs := report(t, l, targetA).Runs
	if len(runs) < 2 || runs[1].Outcome != "crashed" {
		t.Errorf("round %d: Report().Runs = %+v, want the child's run crashed", round, runs)
	}
	if err := r.Finish(t.Context(), RunEnd{Outcome: "completed", SourceFile: "check.csv"}); err != nil {
		t.Fatalf("round %d: Finish() = %v", round, err)
	}
}

// crashChild writes rows from several goroutines until it is killed. It
// prints "M key" once the key's MarkInFlight returned (committed) and
// "R key status" once a Flush after its Record returned.
func crashChild(t *testing.T, schema, round string) {
	ctx := context.Background()
	url := testURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	l, err := Open(ctx, url+sep+"application_name="+childApp(schema), Options{Schema: schema, MaxBatch: 64})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	var r *Run
	for range 100 { // the last round's child may hold the lock a moment more
		if r, err = l.StartRun(ctx, RunInfo{Target: targetA, SourceFile: "crash.csv"}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("StartRun() = %v", err)
	}
	var out sync.Mutex
	say := func(lines ...string) {
		out.Lock()
		defer out.Unlock()
		for _, s := range lines {
			os.Stdout.WriteString(s + "\n")
		}
	}
	statuses := []Status{Created, Exists, Rejected, Failed, InDoubt}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			var pending []string
			for i := 0; ; i++ {
				k := fmt.Sprintf("r%s-w%d-%06d", round, w, i)
				if err := r.MarkInFlight(ctx, sendFor(k, "crash.csv", i)); err != nil {
					t.Errorf("MarkInFlight(%s) = %v", k, err)
					return
				}
				say("M " + k)
				if i%5 == 1 { // a retry: marked again
					if err := r.MarkInFlight(ctx, sendFor(k, "crash.csv", i)); err != nil {
						t.Errorf("MarkInFlight(%s) again = %v", k, err)
						return
					}
				}
				if i%3 == 2 {
					continue // left in flight
				}
				st := statuses[i%len(statuses)]
				if err := r.Record(ctx, Outcome{Key: k, Status: st}); err != nil {
					t.Errorf("Record(%s) = %v", k, err)
					return
				}
				pending = append(pending, "R "+k+" "+string(st))
				if i%7 == 0 {
					if err := r.Flush(ctx); err != nil {
						t.Errorf("Flush() = %v", err)
						return
					}
					say(pending...)
					pending = pending[:0]
				}
			}
		})
	}
	wg.Wait()
}

// childApp is the application name of the connections of the child that
// writes to schema.
func childApp(schema string) string {
	return "crash-" + schema[max(len(schema)-12, 0):]
}

// waitGone waits until the server holds no connection named app.
func waitGone(t *testing.T, l *Ledger, app string) {
	t.Helper()
	for range 200 {
		var n int
		if err := l.pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the killed child's connections (%s) are still open after 10s", app)
}
