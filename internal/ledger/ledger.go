// Package ledger records what happened to every CSV row, across every run, in
// one SQLite file: the operator's source of truth and what a re-run obeys.
//
// Rows are keyed by (target, row key): the target is a Ripio base URL and
// client id, the row key "id:" and the row's customerId column, or "email:"
// and its email as the importer folds it (older versions: lower-cased).
// Rows keyed by customerId are indexed by email too (LookupByEmail), so that
// the importer finds every row that holds a person's email, whatever its
// key. Rows that never get a key of their own (invalid, duplicate) are kept
// apart by source file and line and replaced when that file is read again.
// A target also records whether it assigns its own customer ids
// (Run.RecordAssignsIDs, AssignsIDs) or keeps those it is sent
// (Run.RecordKeepsIDs, KeepsIDs); what to do about it is the importer's.
//
// A keyed row moves through these states:
//
//	(new) ──MarkInFlight──▶ in_flight ──Record──▶ created | exists | rejected | failed | in_doubt
//	failed, in_doubt, rejected* ──MarkInFlight──▶ in_flight      (*only when changed or forced)
//	in_flight ──Release──▶ the row as it was before   (nothing reached the server)
//	in_flight ──(the run dies)──▶ in_doubt            (at the next StartRun on the target)
//
// A run dies with its process, or when its Ledger is closed before Finish.
//
// created and exists are final. in_flight is durable before the request
// leaves, so a row the server may have seen is never taken for unsent.
//
// One writer: all writes of a Ledger go through one goroutine that commits
// them in batches (group commit); readers may be many. A second goroutine
// fsyncs the log behind it. Marks, Flush and Finish wait until their commit
// is on disk (MarkInFlightCommitted returns at the commit, and Pending says
// when it is on disk); outcomes do not wait, and a commit holding only
// those survives the process dying but waits for the next fsync to survive
// the machine's. Two runs on one ledger and target are refused by a lock
// the operating system drops when the process dies. A Ledger and its Runs
// are safe for concurrent use.
package ledger

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/bulkcreate/bulkcreate/internal/row"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// existence ranks states by how surely their customer exists.
func existence(s row.Status) int {
	switch {
	case s.Done():
		return 2
	case s.MayExist():
		return 1
	}
	return 0
}

// Errors returned by Open and StartRun.
var (
	// ErrNotFound: Options.MustExist was set and there is no ledger file.
	ErrNotFound = errors.New("ledger: no ledger file")
	// ErrNewerSchema: the file was written by a newer bulkcreate.
	ErrNewerSchema = errors.New("ledger: written by a newer bulkcreate; upgrade bulkcreate to read it")
	// ErrNotLedger: the file is not a SQLite database, or is damaged.
	ErrNotLedger = errors.New("ledger: not a bulkcreate ledger or damaged")
	// ErrBusy: another import holds this ledger and target.
	ErrBusy = errors.New("ledger: another import is running on this ledger and target")
	// ErrHardLinked: the ledger's file has more than one name. SQLite
	// names its log after the name it opened, so two names are two logs
	// on one database: commits through one are lost to the other, and
	// the run lock, which lives beside a name, does not hold across them.
	ErrHardLinked = errors.New("ledger: the file has hard links; SQLite cannot keep a database with two names consistent")
)

// Options configure Open.
type Options struct {
	// MustExist refuses to create a missing file (report, failures).
	MustExist bool
	// BusyTimeout is how long to wait for a lock held by another process.
	// Default 5s.
	BusyTimeout time.Duration
	// MaxBatch is the most writes committed in one transaction. Default 1024.
	MaxBatch int
}

// Ledger is an open ledger file.
type Ledger struct {
	path string
	db   *sql.DB
	w    *writer

	targets sync.Map // target name -> id; ids never change once given

	mu   sync.Mutex
	runs map[*Run]struct{} // started, not finished: Close releases their locks
}

// Open opens the ledger at path, creating it (mode 0600) unless
// opts.MustExist, and brings its schema up to date. It returns ErrNotFound,
// ErrNotLedger or ErrNewerSchema (wrapped) when the file is missing, is not a
// ledger, or is newer than this bulkcreate.
func Open(ctx context.Context, path string, opts Options) (*Ledger, error) {
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if fi, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if opts.MustExist {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		// SQLite gives its -wal and -shm files the database file's mode.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("ledger: create %s: %w", path, err)
		}
		if f != nil {
			f.Close()
		}
	} else if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	} else if fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrNotLedger, path)
	} else if err := checkLinks(path, fi); err != nil {
		return nil, err
	} else if fi.Size() > 0 {
		if err := retryBusy(ctx, opts.BusyTimeout, func() error { return checkFile(ctx, path, opts.BusyTimeout) }); err != nil {
			return nil, fmt.Errorf("ledger: open %s: %w", path, explainOpen(path, classifySQLite(err)))
		}
	}
	db, err := sql.Open(driverName, dsn(path, opts.BusyTimeout))
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	// The writer keeps one connection for itself; the rest serve readers.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	if err := retryBusy(ctx, opts.BusyTimeout, func() error { return migrate(ctx, db) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, explainOpen(path, classifySQLite(err)))
	}
	var w *writer
	err = retryBusy(ctx, opts.BusyTimeout, func() (err error) {
		w, err = newWriter(ctx, db, opts.MaxBatch)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, explainOpen(path, classifySQLite(err)))
	}
	return &Ledger{path: path, db: db, w: w, runs: map[*Run]struct{}{}}, nil
}

// checkLinks refuses a ledger file with more than one hard link.
func checkLinks(path string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return fmt.Errorf("%w: %s has %d names; remove the others (or copy the file) and use one", ErrHardLinked, path, st.Nlink)
	}
	return nil
}

// retryBusy runs f again while it fails with SQLITE_BUSY or SQLITE_LOCKED,
// until timeout: a connection that switches a new file to WAL mode while
// another process opens it too can be refused at once, without SQLite's
// busy handler (about 1 in 75 of four simultaneous first opens).
func retryBusy(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := f()
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// checkFile refuses a file that is not a ledger before the ledger's
// connections touch it: they would switch it to WAL mode, a change to
// another program's database.
func checkFile(ctx context.Context, path string, busyTimeout time.Duration) error {
	// Through SQLite only, read-only: it refuses a file that is not a
	// SQLite database (ErrNotADB). Not os.Open: closing any descriptor of
	// the file drops every POSIX lock this process holds on it, SQLite's
	// included, and another process could then take the ledger's log away
	// from a Ledger this process has open.
	db, err := sql.Open("sqlite3", fmt.Sprintf("%s?mode=ro&_busy_timeout=%d", fileURI(path), busyTimeout.Milliseconds()))
	if err != nil {
		return err
	}
	defer db.Close()
	var tables, known int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(name = 'schema_migrations'), 0)
		FROM sqlite_master WHERE type = 'table'`).Scan(&tables, &known); err != nil {
		return err
	}
	if tables > 0 && known == 0 {
		return errForeignDB
	}
	return nil
}

var errForeignDB = fmt.Errorf("%w: a SQLite database without a schema_migrations table", ErrNotLedger)

// driverName is go-sqlite3 registered with the ledger's per-connection
// settings that its DSN cannot carry.
const driverName = "sqlite3_bulkcreate_ledger"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		// Checkpointing runs inside the committing transaction, and copies
		// back each page the log holds once however many commits changed
		// it. New rows land on a random leaf of a key index, so the longer
		// the log, the more of them share a leaf: 40,000 pages (160 MB of
		// log at most, removed when the last connection closes) trades disk
		// for the outcomes/s of a large ledger (BENCHMARKS.md, figure 6).
		// No mmap: it would make a disk error a SIGBUS instead of an error
		// and put the whole file in the process's resident memory.
		if _, err := c.Exec("PRAGMA wal_autocheckpoint = 40000", nil); err != nil {
			return err
		}
		// Emails lower-cased as bulkcreate does (Unicode), for migrations:
		// SQLite's lower() lowers ASCII letters only.
		return c.RegisterFunc("bulkcreate_lower", strings.ToLower, true)
	}})
}

// dsn holds every per-connection setting, so each pooled connection gets
// them. synchronous=FULL: a commit is on disk, power cut included, when it
// returns (migrations). The writer's connection sets NORMAL and leaves the
// fsync to its syncer; see writer. _stmt_cache_size: the writer and Lookup
// run the same few statements many times; parsing them again each time
// cost half the writer's time.
func dsn(path string, busyTimeout time.Duration) string {
	return fmt.Sprintf("%s?mode=rw&_busy_timeout=%d&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate&_foreign_keys=1&_stmt_cache_size=32",
		fileURI(path), busyTimeout.Milliseconds())
}

// Path is the file the ledger lives in.
func (l *Ledger) Path() string { return l.path }

// Close commits pending writes and closes the file, and returns the first
// error. A run not finished is left as a dead run would be: "running" in
// the ledger, its rows in flight; Close releases its target's lock, and the
// next StartRun on the target marks it crashed and its rows in_doubt.
func (l *Ledger) Close() error {
	err := l.w.close()
	l.mu.Lock()
	runs := make([]*Run, 0, len(l.runs))
	for r := range l.runs {
		runs = append(runs, r)
	}
	l.mu.Unlock()
	for _, r := range runs {
		r.unlock()
	}
	if cerr := l.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("ledger: close %s: %w", l.path, cerr)
	}
	return err
}

// explainOpen says why SQLite could not open or write the file when the
// reason is permissions: SQLite only says "unable to open database file".
func explainOpen(path string, err error) error {
	var se sqlite3.Error
	if !errors.As(err, &se) || (se.Code != sqlite3.ErrCantOpen && se.Code != sqlite3.ErrReadonly && se.Code != sqlite3.ErrPerm) {
		return err
	}
	const w, x = 2, 1 // W_OK, X_OK
	dir := filepath.Dir(path)
	if aerr := syscall.Access(dir, w|x); aerr != nil {
		return fmt.Errorf("cannot write in directory %s, where SQLite keeps the ledger's -wal and -shm files (%v): %w",
			dir, err, &fs.PathError{Op: "access", Path: dir, Err: aerr})
	}
	if aerr := syscall.Access(path, w); aerr != nil {
		return fmt.Errorf("cannot write the ledger file (%v): %w", err, &fs.PathError{Op: "access", Path: path, Err: aerr})
	}
	return err
}

func (l *Ledger) addRun(r *Run) {
	l.mu.Lock()
	l.runs[r] = struct{}{}
	l.mu.Unlock()
}

func (l *Ledger) removeRun(r *Run) {
	l.mu.Lock()
	delete(l.runs, r)
	l.mu.Unlock()
}

// fileURI is path as the file part of a SQLite URI. '?' and '#' would end
// it, and an absolute path gets an empty authority ("file:///..."): after
// "file:", a path that begins with "//" would be taken for one.
func fileURI(path string) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	if strings.HasPrefix(p, "/") {
		return "file://" + p
	}
	return "file:" + p
}

// classifySQLite maps SQLite's damaged-file codes to ErrNotLedger.
func classifySQLite(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt) {
		return fmt.Errorf("%w: %v", ErrNotLedger, err)
	}
	return err
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// targetID returns the id of target, creating it when create is set;
// ok is false when it does not exist and create is not set.
func (l *Ledger) targetID(ctx context.Context, target string, create bool) (id int64, ok bool, err error) {
	if v, ok := l.targets.Load(target); ok {
		return v.(int64), true, nil
	}
	err = l.db.QueryRowContext(ctx, `SELECT id FROM targets WHERE name = ?`, target).Scan(&id)
	switch {
	case err == nil:
	case !errors.Is(err, sql.ErrNoRows):
		return 0, false, classifySQLite(err)
	case !create:
		return 0, false, nil
	default:
		// Through the writer: it is the ledger's one writer.
		err = l.w.submit(ctx, func(tx *wtx) error {
			if _, err := tx.exec(`INSERT OR IGNORE INTO targets (name) VALUES (?)`, target); err != nil {
				return err
			}
			id, err = tx.queryInt(`SELECT id FROM targets WHERE name = ?`, target)
			return err
		}, true)
		if err != nil {
			return 0, false, err
		}
	}
	l.targets.Store(target, id)
	return id, true, nil
}
