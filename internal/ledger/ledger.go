// Package ledger records what happened to every CSV row, across every run, in
// one SQLite file: the operator's source of truth and what a re-run obeys.
//
// Rows are keyed by (target, row key): the target is a Ripio base URL and
// client id, the row key the row's customerId column or its lower-cased
// email. Rows that never get a key of their own (invalid, duplicate) are kept
// apart by source file and line and replaced when that file is read again.
//
// A keyed row moves through these states:
//
//	(new) ──MarkInFlight──▶ in_flight ──Record──▶ created | exists | rejected | failed | in_doubt
//	failed, in_doubt, rejected* ──MarkInFlight──▶ in_flight      (*only when changed or forced)
//	in_flight ──Release──▶ the state before it        (nothing reached the server)
//	in_flight ──(the process dies)──▶ in_doubt        (at the next StartRun on the target)
//
// created and exists are final. in_flight is durable before the request
// leaves, so a row the server may have seen is never taken for unsent.
//
// One writer: all writes of a Ledger go through one goroutine that commits
// them in batches (group commit); readers may be many. Two runs on one ledger
// and target are refused by a lock the operating system drops when the
// process dies. A Ledger and its Runs are safe for concurrent use.
package ledger

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Status is a row's state in the ledger.
type Status string

// The row states; see the package doc for how they move.
const (
	Created   Status = "created"   // the server made the customer
	Exists    Status = "exists"    // the server already had it
	Invalid   Status = "invalid"   // failed local validation; never sent
	Duplicate Status = "duplicate" // repeats an earlier row of the same file; never sent
	Rejected  Status = "rejected"  // the server refused the row: permanent
	Failed    Status = "failed"    // retries ran out and nothing reached the server
	InDoubt   Status = "in_doubt"  // the server may have seen it; outcome unknown
	InFlight  Status = "in_flight" // a request is out (reported as in_doubt)
)

// Statuses lists the reported statuses in display order.
var Statuses = []Status{Created, Exists, Invalid, Duplicate, Rejected, Failed, InDoubt}

// Done reports whether a row in this state needs nothing more.
func (s Status) Done() bool { return s == Created || s == Exists }

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
}

// Open opens the ledger at path, creating it (mode 0600) unless
// opts.MustExist, and brings its schema up to date.
func Open(ctx context.Context, path string, opts Options) (*Ledger, error) {
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
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
	}
	dsn := fmt.Sprintf("file:%s?mode=rw&_busy_timeout=%d&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate&_foreign_keys=1",
		escapePath(path), opts.BusyTimeout.Milliseconds())
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, classifySQLite(err))
	}
	l := &Ledger{path: path, db: db}
	l.w = newWriter(db, opts.MaxBatch)
	return l, nil
}

// Path is the file the ledger lives in.
func (l *Ledger) Path() string { return l.path }

// Close flushes pending writes and closes the file. It finishes even when
// ctx is done, and returns the first error.
func (l *Ledger) Close() error {
	err := l.w.close()
	if cerr := l.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("ledger: close %s: %w", l.path, cerr)
	}
	return err
}

func escapePath(p string) string {
	// '?' and '#' would end the file part of the DSN.
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(p)
}

// classifySQLite maps SQLite's damaged-file codes to ErrNotLedger.
func classifySQLite(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt) {
		return fmt.Errorf("%w: %v", ErrNotLedger, err)
	}
	return err
}

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", base)
		}
		body, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	return ms, nil
}

// migrate applies the embedded migrations it has not applied yet, each in a
// transaction of its own, up to upto (0: all).
func migrate(ctx context.Context, db *sql.DB) error { return migrateTo(ctx, db, 0) }

func migrateTo(ctx context.Context, db *sql.DB, upto int) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if latest := ms[len(ms)-1].version; have > latest {
		return fmt.Errorf("%w (schema version %d, this bulkcreate knows %d)", ErrNewerSchema, have, latest)
	}
	for _, m := range ms {
		if m.version <= have || (upto > 0 && m.version > upto) {
			continue
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, now()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// targetID returns the id of target, creating it when create is set;
// ok is false when it does not exist and create is not set.
func (l *Ledger) targetID(ctx context.Context, target string, create bool) (id int64, ok bool, err error) {
	err = l.db.QueryRowContext(ctx, `SELECT id FROM targets WHERE name = ?`, target).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, classifySQLite(err)
	}
	if !create {
		return 0, false, nil
	}
	if _, err := l.db.ExecContext(ctx, `INSERT OR IGNORE INTO targets (name) VALUES (?)`, target); err != nil {
		return 0, false, classifySQLite(err)
	}
	err = l.db.QueryRowContext(ctx, `SELECT id FROM targets WHERE name = ?`, target).Scan(&id)
	return id, err == nil, err
}
