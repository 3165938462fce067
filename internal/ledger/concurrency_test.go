package ledger

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestStartRun_RefusesSecondRunOnTarget(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l1 := openLedger(t, path)
	l2 := openLedger(t, path) // as a second import in this process would
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	l3 := openLedger(t, link) // the same ledger by another name
	first := startRun(t, l1, targetA, "a.csv")

	tests := []struct {
		name   string
		l      *Ledger
		target string
		want   error
	}{
		{"SameLedger", l1, targetA, ErrBusy},
		{"SecondOpen", l2, targetA, ErrBusy},
		{"ThroughASymlink", l3, targetA, ErrBusy},
		{"OtherTarget", l2, targetB, nil},
	}
	for _, tt := range tests {
		r, err := tt.l.StartRun(t.Context(), RunInfo{Target: tt.target, SourceFile: "b.csv"})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: StartRun(%s) = %v, want %v", tt.name, tt.target, err, tt.want)
		}
		if err == nil {
			finish(t, r, RunEnd{})
		}
	}
	if got := report(t, l1, targetA).Runs; len(got) != 1 || got[0].Outcome != "running" {
		t.Errorf("Report(A).Runs = %+v, want only the first run, running: a refused run leaves no trace", got)
	}

	finish(t, first, RunEnd{})
	second := startRun(t, l2, targetA, "b.csv")
	if second.Recovered != 0 {
		t.Errorf("StartRun(A) after Finish: Recovered = %d, want 0", second.Recovered)
	}
	if got := report(t, l2, targetA).Runs[1].Outcome; got != "completed" {
		t.Errorf("first run's outcome = %q, want completed: a finished run is not crashed", got)
	}
}

// TestStartRun_RefusesRunHeldByAnotherProcess runs a child holding a run
// on targetA until its stdin closes.
func TestStartRun_RefusesRunHeldByAnotherProcess(t *testing.T) {
	if path := os.Getenv("LEDGER_HOLD_CHILD"); path != "" {
		holdRun(t, path)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestStartRun_RefusesRunHeldByAnotherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LEDGER_HOLD_CHILD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "running" {
		t.Fatalf("child said %q, want running; stderr:\n%s", lines.Text(), stderr.String())
	}

	l := openLedger(t, path)
	if r, err := l.StartRun(t.Context(), RunInfo{Target: targetA}); !errors.Is(err, ErrBusy) {
		if err == nil {
			r.unlock()
		}
		t.Fatalf("StartRun(A) while another process runs on A = %v, want ErrBusy", err)
	}
	startRun(t, l, targetB, "b.csv")

	stdin.Close() // the child finishes its run and exits
	for lines.Scan() {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	r := startRun(t, l, targetA, "a.csv")
	if r.Recovered != 0 {
		t.Errorf("StartRun(A) after the child finished: Recovered = %d, want 0", r.Recovered)
	}
}

func holdRun(t *testing.T, path string) {
	l := openLedger(t, path)
	r := startRun(t, l, targetA, "child.csv")
	fmt.Println("running")
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	finish(t, r, RunEnd{})
}

func TestRun_ConcurrentWritesAllCommitted(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "customers.csv")
	const workers, perWorker = 16, 150
	statuses := []Status{Created, Exists, Rejected, Failed, InDoubt}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				line := w*perWorker + i + 2
				k := fmt.Sprintf("w%02d-%04d", w, i)
				if err := r.MarkInFlight(t.Context(), sendFor(k, "customers.csv", line)); err != nil {
					errs <- err
					return
				}
				if err := r.Record(t.Context(), Outcome{Key: k, Status: statuses[line%len(statuses)]}); err != nil {
					errs <- err
					return
				}
				if i%10 == 0 {
					li := LineIssue{SourceFile: "customers.csv", SourceLine: -line, Status: Invalid, Reason: "r"}
					if err := r.RecordLineIssue(t.Context(), li); err != nil {
						errs <- err
						return
					}
					got, err := l.Lookup(t.Context(), targetA, []string{k})
					if err != nil {
						errs <- err
						return
					}
					if _, ok := got[k]; !ok {
						errs <- fmt.Errorf("Lookup(%s) found nothing", k)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write = %v", err)
	}
	finish(t, r, RunEnd{Outcome: "completed"})

	rep := report(t, l, targetA)
	const rows = workers * perWorker
	want := map[Status]int{Invalid: workers * ((perWorker + 9) / 10)}
	for line := 2; line < rows+2; line++ {
		want[statuses[line%len(statuses)]]++
	}
	if got := counts(rep); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Report().Counts after %d concurrent rows = %v, want %v", rows, got, want)
	}
	var keys []string
	for w := range workers {
		for i := range perWorker {
			keys = append(keys, fmt.Sprintf("w%02d-%04d", w, i))
		}
	}
	got := lookup(t, l, targetA, keys...)
	for _, k := range keys {
		if p, ok := got[k]; !ok || p.Status == InFlight || p.Attempts != 1 {
			t.Fatalf("Lookup(%s) = %+v, %v, want its outcome after 1 attempt", k, p, ok)
		}
	}
}

// TestOpen_RefusesAHardLinkedLedger: a second name for the file would get a
// log and a run lock of its own, and one run's records would be lost.
func TestOpen_RefusesAHardLinkedLedger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	l := openLedger(t, path)
	link := filepath.Join(dir, "other-name.db")
	if err := os.Link(path, link); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	if r, err := l.StartRun(t.Context(), RunInfo{Target: targetA}); !errors.Is(err, ErrHardLinked) {
		if err == nil {
			finish(t, r, RunEnd{})
		}
		t.Errorf("StartRun on a ledger linked since Open = %v, want ErrHardLinked", err)
	}
	for _, p := range []string{path, link} {
		if l2, err := Open(t.Context(), p, Options{}); !errors.Is(err, ErrHardLinked) {
			if err == nil {
				l2.Close()
			}
			t.Errorf("Open(%s) with two names = %v, want ErrHardLinked", filepath.Base(p), err)
		}
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, l, targetA, "a.csv") // one name again: works
	finish(t, r, RunEnd{})
}

// TestStartRun_TheLockHoldsAcrossEveryNameOfTheFile: a relative path and a
// bind mount of the ledger's directory reach the lock the first name took
// (a symlink: TestStartRun_RefusesSecondRunOnTarget; a hard link is refused:
// TestOpen_RefusesAHardLinkedLedger).
func TestStartRun_TheLockHoldsAcrossEveryNameOfTheFile(t *testing.T) {
	// Not parallel: t.Chdir changes the whole process's directory.
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	first := openLedger(t, path)
	r := startRun(t, first, targetA, "a.csv")
	defer finish(t, r, RunEnd{})

	names := map[string]string{}
	t.Chdir(dir)
	names["RelativePath"] = "ledger.db"
	if os.Geteuid() == 0 {
		mnt := t.TempDir()
		if err := syscall.Mount(dir, mnt, "", syscall.MS_BIND, ""); err == nil {
			t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
			names["BindMount"] = filepath.Join(mnt, "ledger.db")
		} else {
			t.Logf("no bind mount here (%v): that case not run", err)
		}
	}
	for name, p := range names {
		t.Run(name, func(t *testing.T) {
			l := openLedger(t, p)
			if r2, err := l.StartRun(t.Context(), RunInfo{Target: targetA, SourceFile: "b.csv"}); !errors.Is(err, ErrBusy) {
				if err == nil {
					finish(t, r2, RunEnd{})
				}
				t.Errorf("StartRun through %s while a run holds the target = %v, want ErrBusy", p, err)
			}
		})
	}
}
