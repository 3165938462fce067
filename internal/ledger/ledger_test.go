package ledger

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func latestVersion(t *testing.T) int {
	t.Helper()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatalf("loadMigrations() = %v", err)
	}
	return ms[len(ms)-1].version
}

func schemaVersionOf(t *testing.T, l *Ledger) int {
	t.Helper()
	v, err := schemaVersion(t.Context(), l.db)
	if err != nil {
		t.Fatalf("schemaVersion() = %v", err)
	}
	return v
}

func TestMigrations_AreNumberedInOrder(t *testing.T) {
	t.Parallel()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatalf("loadMigrations() = %v", err)
	}
	for i, m := range ms {
		if m.version != i+1 {
			t.Errorf("migration %d is %s, version %d, want version %d", i, m.name, m.version, i+1)
		}
	}
}

func TestOpen_UpgradesFromVersion1(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ledger.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(driverName, dsn(path, time.Second))
	if err != nil {
		t.Fatalf("sql.Open() = %v", err)
	}
	if err := migrateTo(ctx, db, 1); err != nil {
		t.Fatalf("migrateTo(1) = %v", err)
	}
	// Data as the first release wrote it.
	const ts = "2025-01-02T03:04:05Z"
	for _, q := range []string{
		`INSERT INTO targets (id, name) VALUES (1, '` + targetA + `'), (2, '` + targetB + `')`,
		`INSERT INTO runs (id, target_id, source_file, started_at, ended_at, outcome, options, counts)
			VALUES (1, 1, 'old.csv', '` + ts + `', '` + ts + `', 'completed', '{"concurrency":8}', '{"created":1}'),
			       (2, 1, 'old.csv', '` + ts + `', NULL, 'running', '{}', '{}')`,
		`INSERT INTO rows (target_id, row_key, email, type, customer_id_sent, customer_id, status, attempts, http_status,
				error_code, error_message, source_file, source_line, fingerprint, first_run, last_run, created_at, updated_at)
			VALUES (1, 'k-created', 'c@example.com', 'individual', 'cid-c', 'srv-c', 'created', 1, 201, 0, '', 'old.csv', 2, 'fp-c', 1, 1, '` + ts + `', '` + ts + `'),
			       (1, 'k-rejected', 'r@example.com', 'business', 'cid-r', '', 'rejected', 2, 422, 17, 'bad tax id', 'old.csv', 3, 'fp-r', 1, 1, '` + ts + `', '` + ts + `'),
			       (1, 'k-flight', 'f@example.com', 'individual', 'cid-f', '', 'in_flight', 1, 0, 0, '', 'old.csv', 4, 'fp-f', 2, 2, '` + ts + `', '` + ts + `'),
			       (1, 'id:p1', 'PÍA@Example.com', 'individual', 'p1', 'srv-p1', 'created', 1, 201, 0, '', 'old.csv', 6, 'fp-p', 1, 1, '` + ts + `', '` + ts + `'),
			       (2, 'k-created', 'c@example.com', 'individual', 'cid-c', '', 'failed', 3, 503, 0, 'unavailable', 'old.csv', 2, 'fp-c', 1, 1, '` + ts + `', '` + ts + `')`,
		`INSERT INTO line_issues (target_id, source_file, source_line, status, email, type, customer_id, reason, run_id, updated_at)
			VALUES (1, 'old.csv', 5, 'invalid', 'bad', 'individual', '', 'email: missing @', 1, '` + ts + `')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("insert v1 data: %v\n%s", err, q)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	l := openLedger(t, path)
	if got, want := schemaVersionOf(t, l), latestVersion(t); got != want {
		t.Errorf("schema version after Open = %d, want %d", got, want)
	}
	got := lookup(t, l, targetA, "k-created", "k-rejected", "k-flight")
	want := map[string]Prior{
		"k-created":  {Status: Created, Email: "c@example.com", Type: "individual", CustomerIDSent: "cid-c", CustomerID: "srv-c", Fingerprint: "fp-c", SourceFile: "old.csv", SourceLine: 2, Attempts: 1, LastRun: 1},
		"k-rejected": {Status: Rejected, Email: "r@example.com", Type: "business", CustomerIDSent: "cid-r", Fingerprint: "fp-r", SourceFile: "old.csv", SourceLine: 3, Attempts: 2, LastRun: 1, Message: "bad tax id"},
		"k-flight":   {Status: InFlight, Email: "f@example.com", Type: "individual", CustomerIDSent: "cid-f", Fingerprint: "fp-f", SourceFile: "old.csv", SourceLine: 4, Attempts: 1, LastRun: 2},
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("Lookup(A, %s) after upgrade = %+v, want %+v", k, got[k], w)
		}
	}
	if got := lookup(t, l, targetB, "k-created")["k-created"]; got.Status != Failed || got.Attempts != 3 {
		t.Errorf("Lookup(B, k-created) after upgrade = %+v, want failed after 3 attempts", got)
	}
	// A row keyed by customerId before there was an email index is found
	// by its email.
	byEmail, err := l.LookupByEmail(ctx, targetA, []string{"pía@example.com"})
	if err != nil || byEmail["pía@example.com"].CustomerIDSent != "p1" {
		t.Errorf("LookupByEmail(A, pía@example.com) after upgrade = %+v, %v; want the row of id:p1 (PÍA@Example.com)", byEmail, err)
	}
	rep := report(t, l, targetA)
	if got, want := counts(rep), map[Status]int{Created: 2, Rejected: 1, InDoubt: 1, Invalid: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Report(A).Counts after upgrade = %v, want %v", got, want)
	}
	if len(rep.Runs) != 2 || string(rep.Runs[1].Options) != `{"concurrency":8}` || rep.Runs[1].Counts["created"] != 1 {
		t.Errorf("Report(A).Runs after upgrade = %+v, want both runs, options and counts kept", rep.Runs)
	}
	if got := failures(t, l, targetA, Invalid); len(got) != 1 || got[0].Reason != "email: missing @" {
		t.Errorf("Failures(A, invalid) after upgrade = %+v, want line 5's issue", got)
	}

	// The upgraded ledger works: recovery, and writes to old keys.
	r := startRun(t, l, targetA, "old.csv")
	if r.Recovered != 1 {
		t.Errorf("StartRun(A).Recovered after upgrade = %d, want 1", r.Recovered)
	}
	s := sendFor("k-rejected", "new.csv", 3)
	mark(t, r, s)
	record(t, r, Outcome{Key: "k-rejected", Status: Created, CustomerID: "srv-r"})
	mark(t, r, sendFor("k-new", "new.csv", 4))
	flush(t, r)
	if got := lookup(t, l, targetA, "k-rejected")["k-rejected"]; got.Status != Created || got.Attempts != 3 {
		t.Errorf("Lookup(A, k-rejected) after a new attempt = %+v, want created after 3 attempts", got)
	}
	var integrity string
	if err := l.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("PRAGMA integrity_check = %q, %v, want ok", integrity, err)
	}
}

func TestOpen_ConcurrentFirstOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			l, err := Open(t.Context(), path, Options{BusyTimeout: 10 * time.Second})
			if err == nil {
				err = l.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d of a new file, %d at once = %v", i, n, err)
		}
	}
	l := openLedger(t, path)
	var applied int
	if err := l.db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if want := latestVersion(t); applied != want {
		t.Errorf("schema_migrations rows = %d, want %d", applied, want)
	}
}

func TestOpen_RefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	if _, err := l.db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future.sql', '')`,
		latestVersion(t)+1); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{}, {MustExist: true}} {
		l, err := Open(t.Context(), path, opts)
		if err == nil {
			l.Close()
		}
		if !errors.Is(err, ErrNewerSchema) {
			t.Errorf("Open(%+v) of a newer ledger = %v, want ErrNewerSchema", opts, err)
		}
	}
}

func TestOpen_Refuses(t *testing.T) {
	t.Parallel()
	garbage := make([]byte, 8192)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(garbage)
	otherDB := func(t *testing.T, path string) {
		t.Helper()
		db, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine')`); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, path string) // makes path
		opts  Options
		want  error
	}{
		{"Garbage", func(t *testing.T, p string) { writeFile(t, p, garbage) }, Options{}, ErrNotLedger},
		{"GarbageMustExist", func(t *testing.T, p string) { writeFile(t, p, garbage) }, Options{MustExist: true}, ErrNotLedger},
		{"ShortGarbage", func(t *testing.T, p string) { writeFile(t, p, []byte("email,type\nx@y.z,individual\n")) }, Options{}, ErrNotLedger},
		{"ZeroedHeader", func(t *testing.T, p string) { writeFile(t, p, make([]byte, 4096)) }, Options{}, ErrNotLedger},
		{"AnotherProgramsDatabase", otherDB, Options{}, ErrNotLedger},
		{"Directory", func(t *testing.T, p string) { os.Mkdir(p, 0o700) }, Options{}, ErrNotLedger},
		{"MissingMustExist", func(*testing.T, string) {}, Options{MustExist: true}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "ledger.db")
			tt.setup(t, path)
			before, _ := os.ReadFile(path)
			l, err := Open(t.Context(), path, tt.opts)
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open(%s) = %v, want %v", tt.name, err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Open(%s) = %q, want the path named", tt.name, err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Errorf("Open(%s) changed the file", tt.name)
			}
			if tt.want == ErrNotFound {
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Open(MustExist) of a missing file: Stat = %v, want it still missing", err)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_CreatesFilesPrivate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openLedger(t, path)
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("k", "f.csv", 2))
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("Stat(%s) = %v", p, err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode of %s = %v, want -rw-------", filepath.Base(p), got)
		}
	}
}

func TestOpen_UnusablePlace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "file"), []byte("x"))
	tests := []struct {
		name string
		path string
		want error
	}{
		{"MissingDirectory", filepath.Join(dir, "missing", "ledger.db"), fs.ErrNotExist},
		{"ParentIsAFile", filepath.Join(dir, "file", "ledger.db"), syscall.ENOTDIR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := Open(t.Context(), tt.path, Options{})
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Open(%s) = %v, want %v naming the path", tt.path, err, tt.want)
			}
		})
	}
}

// TestOpen_UnwritableDirectory opens a ledger whose directory the user
// cannot write: SQLite cannot make the -wal and -shm files there. Root can
// write anywhere, so as root the test runs itself again as nobody.
func TestOpen_UnwritableDirectory(t *testing.T) {
	if p := os.Getenv("LEDGER_UNWRITABLE_CHILD"); p != "" {
		l, err := Open(t.Context(), p, Options{})
		if err == nil {
			l.Close()
		}
		fmt.Printf("permission=%v\nerror=%v\n", errors.Is(err, fs.ErrPermission), err)
		return
	}
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "ledgers")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ledger.db")
	l, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The file itself is writable; only its directory is not.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })

	var out string
	if os.Geteuid() != 0 {
		l, err := Open(t.Context(), path, Options{})
		if err == nil {
			l.Close()
		}
		out = fmt.Sprintf("permission=%v\nerror=%v\n", errors.Is(err, fs.ErrPermission), err)
	} else {
		out = runAsNobody(t, base, path)
	}
	if !strings.Contains(out, "permission=true\n") || !strings.Contains(out, "cannot write in directory "+dir) {
		t.Errorf("Open(%s) in a read-only directory:\n%s\nwant fs.ErrPermission and an error naming the directory", path, out)
	}
}

// runAsNobody runs TestOpen_UnwritableDirectory's child half as user nobody
// and returns its output. The test binary is copied under base, which is
// opened up for nobody to reach.
func runAsNobody(t *testing.T, base, path string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "ledger.test")
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's directories are private to root.
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), bin, "-test.run=^TestOpen_UnwritableDirectory$", "-test.count=1")
	cmd.Env = []string{"LEDGER_UNWRITABLE_CHILD=" + path, "PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as nobody: %v\n%s", bin, err, out)
	}
	return string(out)
}

// TestOpen_SecondOpenKeepsTheLocks: opening a ledger this process has open
// already must not drop the POSIX locks SQLite holds on it (closing any
// descriptor of a file does); without them another process could take the
// log away from the first Ledger, marks and all.
func TestOpen_SecondOpenKeepsTheLocks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openLedger(t, path)
	mark(t, startRun(t, l, targetA, "f.csv"), sendFor("a", "f.csv", 2))
	before := posixLocks(t, path)
	if before == 0 {
		t.Fatalf("no POSIX lock of this process on %s while a Ledger has it open", path)
	}
	openLedger(t, path)
	if after := posixLocks(t, path); after != before {
		t.Errorf("this process holds %d POSIX locks on the ledger after a second Open, %d before", after, before)
	}
}

// posixLocks counts the POSIX locks this process holds on path's file, as
// /proc/locks lists them.
func posixLocks(t *testing.T, path string) int {
	t.Helper()
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Skipf("no /proc/locks: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	inode := fmt.Sprintf(":%d ", fi.Sys().(*syscall.Stat_t).Ino)
	n := 0
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		// 1: POSIX  ADVISORY  READ 14151 fe:00:10079728 1073741826 1073742335
		if len(f) >= 6 && f[1] == "POSIX" && f[4] == strconv.Itoa(os.Getpid()) && strings.HasSuffix(f[5]+" ", inode) {
			n++
		}
	}
	return n
}

// TestOpen_PathsAURIWouldMisread: the ledger is the file named, whatever
// the name holds that a SQLite URI reads otherwise: a '?' or '#' (the end
// of the file part), a '%' (an escape), a leading "//" (an authority).
func TestOpen_PathsAURIWouldMisread(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, path := range []string{
		filepath.Join(dir, "a?mode=ro#b%41 c.db"),
		"/" + filepath.Join(dir, "slashes.db"),
	} {
		l := openLedger(t, path)
		r := startRun(t, l, targetA, "f.csv")
		mark(t, r, sendFor("k1", "f.csv", 2))
		finish(t, r, RunEnd{Outcome: "completed"})
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Open(%q): the ledger is not at its path: %v", path, err)
		}
		if got := lookup(t, openLedger(t, path), targetA, "k1")["k1"].Status; got != InFlight {
			t.Errorf("Open(%q) again: k1 = %q, want %s", path, got, InFlight)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); !strings.HasPrefix(n, "a?mode=ro#b%41 c.db") && !strings.HasPrefix(n, "slashes.db") {
			t.Errorf("a file %q beside the ledgers", n)
		}
	}
}
