package postgres

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// Numbers may skip one taken by a parallel line of work (migrate fills the
// gap when it arrives), but never repeat.
func TestMigrations_AreNumberedInOrder(t *testing.T) {
	t.Parallel()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatalf("loadMigrations() = %v", err)
	}
	for i, m := range ms {
		if i == 0 && m.version != 1 || i > 0 && m.version <= ms[i-1].version {
			t.Errorf("migration %d is %s, version %d, want a version above the one before", i, m.name, m.version)
		}
	}
}

func TestOpen_AppliesAMigrationBelowTheLatestApplied(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	l := openLedger(t, url, schema)
	// As if the schema had been migrated by a bulkcreate that did not have
	// migration 2 yet, though it had every later one.
	if _, err := l.pool.Exec(t.Context(), `DELETE FROM schema_migrations WHERE version = 2;
		ALTER TABLE targets DROP COLUMN assigns_ids_since`); err != nil {
		t.Fatal(err)
	}
	openLedger(t, url, schema)
	var n int
	if err := l.pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM schema_migrations WHERE version = 2`).Scan(&n); err != nil || n != 1 {
		t.Errorf("migration 2 recorded %d times (%v), want once", n, err)
	}
	if _, err := l.AssignsIDs(t.Context(), targetA); err != nil {
		t.Errorf("AssignsIDs() after the gap was filled = %v", err)
	}
}

func latestVersion(t *testing.T) int {
	t.Helper()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatalf("loadMigrations() = %v", err)
	}
	return ms[len(ms)-1].version
}

func TestOpen_ConcurrentFirstOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			l, err := Open(t.Context(), url, Options{Schema: schema})
			if err == nil {
				err = l.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d of a new schema, %d at once = %v", i, n, err)
		}
	}
	l := openLedger(t, url, schema)
	var applied int
	if err := l.pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if want := len(ms); applied != want {
		t.Errorf("schema_migrations rows = %d, want %d", applied, want)
	}
}

func TestOpen_Refuses(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	tests := []struct {
		name  string
		setup string // SQL run in the schema first; "" leaves it absent
		opts  Options
		want  error
	}{
		{"MissingSchemaForAReader", "", Options{MustExist: true}, ledger.ErrNotFound},
		{"AnotherProgramsTables", "CREATE TABLE customers (id int)", Options{}, ledger.ErrNotLedger},
		{"AnotherProgramsTablesForAReader", "CREATE TABLE customers (id int)", Options{MustExist: true}, ledger.ErrNotLedger},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			schema := newSchema(t, url)
			if tt.setup != "" {
				execIn(t, url, schema, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize(), tt.setup)
			}
			tt.opts.Schema = schema
			l, err := Open(t.Context(), url, tt.opts)
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open(%+v) = %v, want %v", tt.opts, err, tt.want)
			}
			if tt.setup == "" {
				var n int
				conn := connect(t, url)
				conn.QueryRow(t.Context(), `SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&n)
				if n != 0 {
					t.Errorf("a reader's Open created schema %s", schema)
				}
			}
		})
	}
}

func TestOpen_RefusesNewerSchema(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	l, err := Open(t.Context(), url, Options{Schema: schema})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	if _, err := l.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future.sql')`,
		latestVersion(t)+1); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{Schema: schema}, {Schema: schema, MustExist: true}} {
		l, err := Open(t.Context(), url, opts)
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, ledger.ErrNewerSchema) {
			t.Errorf("Open(%+v) of a newer ledger = %v, want ErrNewerSchema", opts, err)
		}
	}
}

// TestOpen_ErrorsHideThePassword: an error that names the database names
// it without the URL's secret.
func TestOpen_ErrorsHideThePassword(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"postgres://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=1", // nothing listens on port 1
		"postgres://u:s3cret-pw@127.0.0.1:99999/db",               // not a port
	} {
		l, err := Open(t.Context(), url, Options{})
		if err == nil {
			l.Close()
			t.Fatalf("Open(%s) = nil, want an error", url)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Open(%s) = %v, which shows the password", url, err)
		}
	}
}

// connect opens a connection of the test's own, closed when it ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	return conn
}

// execIn runs stmts in schema, as another program would.
func execIn(t *testing.T, url, schema string, stmts ...string) {
	t.Helper()
	conn := connect(t, url)
	for _, s := range stmts {
		if _, err := conn.Exec(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if strings.HasPrefix(s, "CREATE SCHEMA") {
			if _, err := conn.Exec(t.Context(), "SET search_path = "+pgx.Identifier{schema}.Sanitize()); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestStartRun_RefusesSecondRunOnTarget(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	l1 := openLedger(t, url, schema)
	l2 := openLedger(t, url, schema) // as a second import would
	l3 := openLedger(t, url, newSchema(t, url))
	first := startRun(t, l1, targetA, "a.csv")

	tests := []struct {
		name   string
		l      *Ledger
		target string
		want   error
	}{
		{"SameLedger", l1, targetA, ledger.ErrBusy},
		{"SecondOpen", l2, targetA, ledger.ErrBusy},
		{"OtherTarget", l2, targetB, nil},
		{"OtherSchema", l3, targetA, nil}, // another ledger in the same database
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

// TestStartRun_KilledProcessReleasesItsLock runs a child that starts a run
// on targetA, marks rows in flight and records one, then is SIGKILLed: its
// connection ends with it, so the next StartRun is not refused, and it finds
// the rows in flight in doubt and the child's run crashed.
func TestStartRun_KilledProcessReleasesItsLock(t *testing.T) {
	if schema := os.Getenv("LEDGER_PG_HOLD_CHILD"); schema != "" {
		holdRunAndWait(t, schema)
		return
	}
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestStartRun_KilledProcessReleasesItsLock$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LEDGER_PG_HOLD_CHILD="+schema)
	if _, err := cmd.StdinPipe(); err != nil { // held open until the child is killed
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
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "running ") {
		t.Fatalf("child said %q, want running; stderr:\n%s", lines.Text(), stderr.String())
	}
	var childRun int64
	fmt.Sscan(strings.TrimPrefix(lines.Text(), "running "), &childRun)

	l := openLedger(t, url, schema)
	if r, err := l.StartRun(t.Context(), RunInfo{Target: targetA}); !errors.Is(err, ledger.ErrBusy) {
		if err == nil {
			r.unlock()
		}
		t.Fatalf("StartRun(A) while another process runs on A = %v, want ErrBusy", err)
	}

	cmd.Process.Kill() // SIGKILL: no Finish, no unlock, no goodbye to the server
	cmd.Wait()
	// The server sees the socket close at once, but ends the backend a
	// moment later; the next import would be started by a person or cron.
	var r *Run
	for range 100 {
		if r, err = l.StartRun(t.Context(), RunInfo{Target: targetA, SourceFile: "a.csv"}); !errors.Is(err, ledger.ErrBusy) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("StartRun(A) after the child was killed = %v, want a run", err)
	}
	t.Cleanup(r.unlock)
	if r.Recovered != 2 {
		t.Errorf("StartRun(A).Recovered = %d, want 2 (the child's rows in flight)", r.Recovered)
	}
	got := lookup(t, l, targetA, "a", "b", "c")
	for k, want := range map[string]Status{"a": InDoubt, "b": Created, "c": InDoubt} {
		if got[k].Status != want {
			t.Errorf("Lookup(%s).Status after the child died = %q, want %q", k, got[k].Status, want)
		}
	}
	for _, rr := range report(t, l, targetA).Runs {
		if rr.ID == childRun && rr.Outcome != "crashed" {
			t.Errorf("the killed child's run = %+v, want crashed", rr)
		}
	}
}

func holdRunAndWait(t *testing.T, schema string) {
	l := openLedger(t, testURL(t), schema)
	r := startRun(t, l, targetA, "child.csv")
	for i, k := range []string{"a", "b", "c"} {
		mark(t, r, sendFor(k, "child.csv", i+2))
	}
	record(t, r, Outcome{Key: "b", Status: Created, CustomerID: "srv-b"})
	flush(t, r)
	fmt.Println("running", r.ID)
	bufio.NewReader(os.Stdin).ReadString('\n') // until killed
}

func TestRun_ConcurrentWritesAllCommitted(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "customers.csv")
	const workers, perWorker = 16, 60
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

// TestWriter_FailedCommitFailsLaterWrites: the writer's connection is ended
// under it; the commit that finds out fails, and so does every write
// after it, so that an import stops rather than drop outcomes.
func TestWriter_FailedCommitFailsLaterWrites(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	l, err := Open(t.Context(), url, Options{Schema: newSchema(t, url)})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("a", "f.csv", 2))
	pid := l.w.conn.Conn().PgConn().PID()
	if _, err := connect(t, url).Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	record(t, r, Outcome{Key: "a", Status: Created})
	if err := r.Flush(t.Context()); err == nil {
		t.Fatalf("Flush() after the writer's connection ended = nil, want an error")
	}
	wantFailedWrites(t, l, r, "a lost connection")
}

// TestBuildBatch_OneStatementPerRunOfAKind: consecutive writes of a kind
// share a statement until a row comes back; other writes keep their place.
func TestBuildBatch_OneStatementPerRunOfAKind(t *testing.T) {
	t.Parallel()
	out := func(k string) writeOp { return writeOp{kind: opRecord, targetID: 1, outcome: Outcome{Key: k}} }
	ops := []writeOp{
		{kind: opMark, targetID: 1, sends: []Send{{Key: "a"}, {Key: "b"}}},
		{kind: opMark, targetID: 2, sends: []Send{{Key: "a"}}}, // another target: another row
		{kind: opMark, targetID: 1, sends: []Send{{Key: "a"}}}, // a again: a second statement
		out("a"), out("b"), {kind: opFlush}, out("c"),
		{kind: opRelease, targetID: 1, key: "d"},
		out("d"), out("d"),
		{kind: opLineIssue, targetID: 1, issue: LineIssue{SourceFile: "f", SourceLine: 2}},
		{kind: opLineIssue, targetID: 1, issue: LineIssue{SourceFile: "f", SourceLine: 3}},
		{kind: opClearLineIssue, targetID: 1, issue: LineIssue{SourceFile: "f", SourceLine: 2}},
	}
	var b pgx.Batch
	buildBatch(&b, ops)
	var got []string
	for _, q := range b.QueuedQueries {
		n := 1
		if len(q.Arguments) > 1 {
			if keys, ok := q.Arguments[1].([]string); ok {
				n = len(keys)
			}
		}
		got = append(got, fmt.Sprintf("%s×%d", strings.Fields(q.SQL)[0], n))
	}
	want := []string{"INSERT×3", "INSERT×1", "UPDATE×3", "DELETE×1", "UPDATE×1", "UPDATE×1", "INSERT×2", "DELETE×1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("buildBatch() statements = %v, want %v", got, want)
	}
}

// TestWriter_CommitIsAllOrNothing: a commit whose second statement fails
// (a file name that is not UTF-8, which PostgreSQL's text refuses) leaves
// nothing of its first.
func TestWriter_CommitIsAllOrNothing(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "f.csv")
	err := l.w.commit([]writeOp{
		{kind: opMark, targetID: r.targetID, runID: r.ID, sends: []Send{sendFor("a", "f.csv", 2)}},
		{kind: opLineIssue, targetID: r.targetID, runID: r.ID, issue: LineIssue{SourceFile: "\xff.csv", SourceLine: 3, Status: Invalid}},
	})
	if err == nil {
		t.Fatalf("commit(a mark, a line issue of file %q) = nil, want an error", "\xff.csv")
	}
	if got := lookup(t, l, targetA, "a"); len(got) != 0 {
		t.Errorf("Lookup(a) after the failed commit = %+v, want nothing", got)
	}
}

// TestRun_LostLockStopsTheRun: the connection holding a run's lock is ended
// (a database restart, a broken network); the run notices and every later
// write fails with ErrLockLost, so the import stops.
func TestRun_LostLockStopsTheRun(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	l, err := Open(t.Context(), url, Options{Schema: newSchema(t, url)})
	if err != nil {
		t.Fatal(err)
	}
	l.lockCheckEvery = 20 * time.Millisecond
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("a", "f.csv", 2))
	r.mu.Lock()
	pid := r.lock.PgConn().PID()
	r.mu.Unlock()
	if _, err := connect(t, url).Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.w.failed() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.w.failed(); !errors.Is(err, ErrLockLost) {
		t.Fatalf("the ledger's error after the lock's connection ended = %v, want ErrLockLost", err)
	}
	wantFailedWrites(t, l, r, "the lock's connection ended")
}

// TestOpen_SchemaFromTheURLsSearchPath: with no Options.Schema, the URL's
// search_path names the schema when it names one; else the default.
func TestOpen_SchemaFromTheURLsSearchPath(t *testing.T) {
	t.Parallel()
	base := testURL(t)
	schema := newSchema(t, base)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	l, err := Open(t.Context(), base+sep+"search_path="+schema, Options{})
	if err != nil {
		t.Fatalf("Open(search_path=%s) = %v", schema, err)
	}
	defer l.Close()
	if l.Schema() != schema {
		t.Errorf("Open(search_path=%s).Schema() = %q, want %q", schema, l.Schema(), schema)
	}
	if _, err := Open(t.Context(), base+sep+"search_path=a,public", Options{}); err == nil || !strings.Contains(err.Error(), "one schema") {
		t.Errorf("Open(search_path=a,public) = %v, want an error asking for one schema", err)
	}
}

// TestRun_WritesOfARunAnotherImportEndedAreRefused: once another import has
// taken the target and marked this run crashed (its lock's connection having
// ended unnoticed), this run's writes are refused whole, before the next
// lock check: the rows it left in flight are in doubt, and stay so.
func TestRun_WritesOfARunAnotherImportEndedAreRefused(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	l, err := Open(t.Context(), url, Options{Schema: newSchema(t, url)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("a", "f.csv", 2))
	if _, err := l.pool.Exec(t.Context(), `UPDATE runs SET outcome = 'crashed' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	err = r.MarkInFlight(t.Context(), sendFor("b", "f.csv", 3))
	if !errors.Is(err, ErrLockLost) {
		t.Fatalf("MarkInFlight by a run another import ended = %v, want ErrLockLost", err)
	}
}
