// Package postgres is the ledger in a PostgreSQL database: the same rows,
// states and guarantees as package ledger's SQLite file (see its package
// doc for the state machine of a row), for operators who want the ledger in
// a database they already run, and for a fleet of processes that import
// together.
//
// The ledger's tables live in one schema (Options.Schema), created on first
// Open and brought up to date by embedded, numbered migrations.
//
// One writer per Ledger: its writes go through one goroutine that commits
// them in batches (group commit), each kind of write in a batch as one
// statement. A commit returns once PostgreSQL has it on disk
// (synchronous_commit is on for the ledger's connections unless the URL says
// otherwise), so MarkInFlightCommitted's Pending is durable when it returns.
// Outcomes do not wait for their commit; Flush and Finish do.
//
// Two runs on one target of one ledger (database and schema) are refused
// with ledger.ErrBusy, by an advisory lock held on a
// connection of the run's own: PostgreSQL drops it when that connection ends,
// so a run whose process died never blocks the next one, which turns the
// dead run's rows in flight into in_doubt. A run whose lock's connection ends
// under it (a database restart, a broken network) notices within seconds
// and fails every later write with ErrLockLost. The lock needs a connection
// of its own: connect directly or through a pool that keeps each client on
// one server connection, not PgBouncer's transaction pooling, which would
// hand the connection to others.
// A Ledger and its Runs are safe for concurrent use.
//
// Fleet mode (fleet.go, worker.go): an import's Run may Queue its rows,
// chunk by chunk, instead of sending them, and end with Loaded, which
// releases the target's lock: the lock then serializes only the imports
// that read files. Workers (StartWorker) claim chunks by lease on the
// database's clock, renew their leases by heartbeat, and fence every write
// by the chunk's fencing token, which grows on every claim; a claim of a
// chunk whose lease ran out first makes its rows in flight in_doubt. Rows
// move queued -> in_flight -> an outcome, as marks and records of a run do;
// a row in doubt when queued stays in_doubt until a worker sends it. An
// import stopped for its error limit (StopRun) has its chunks claimed no
// more, and ends aborted once none is held, its unsent rows left queued.
//
// Text columns cannot hold NUL bytes or invalid UTF-8. The fields of an
// invalid line are kept as bytes; a source file whose name is not UTF-8 is
// refused at StartRun, before anything is sent.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DefaultSchema holds the ledger's tables unless Options.Schema names another.
const DefaultSchema = "bulkcreate"

// Options configure Open.
type Options struct {
	// MustExist refuses a database without the ledger's schema with
	// ledger.ErrNotFound (report, failures) instead of creating it.
	MustExist bool
	// Schema holds the ledger's tables. Default: the URL's search_path
	// when it names one schema (postgres://host/db?search_path=imports),
	// else DefaultSchema.
	Schema string
	// MaxBatch is the most writes committed in one transaction. Default 1024.
	MaxBatch int
	// MaxConns caps the pool for lookups, reports and the writer; each
	// started run holds one more connection for its lock. Default 4.
	MaxConns int32
	// Timeout is the longest a commit or a lookup may take. A commit
	// that takes longer (the database hung, or the way to it) fails, and
	// every write after it: the run stops with the ledger's error instead
	// of waiting for ever. Its writes may have been committed: a row
	// marked in flight by it is in doubt at the next run. Default 1m.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	return o
}

// Ledger is an open PostgreSQL ledger.
type Ledger struct {
	pool      *pgxpool.Pool
	schema    string
	schemaOID uint32 // the first key of the run locks: unique in the database
	w         *writer
	timeout   time.Duration // Options.Timeout
	// lockCheckEvery is how often a run checks its lock's connection; tests
	// shorten it.
	lockCheckEvery time.Duration

	targets sync.Map // target name -> id; ids never change once given

	mu   sync.Mutex
	runs map[*Run]struct{} // started, not finished: Close releases their locks
}

// Open connects to the database at url (a postgres:// URL or a keyword/value
// string, as pgx takes it), creates the ledger's schema unless
// opts.MustExist, and brings it up to date. It returns ledger.ErrNotFound,
// ledger.ErrNotLedger or ledger.ErrNewerSchema (wrapped) when the schema is
// missing, holds another program's tables, or is newer than this
// bulkcreate.
func Open(ctx context.Context, url string, opts Options) (*Ledger, error) {
	opts = opts.withDefaults()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may hold the URL, password included.
		return nil, errors.New("ledger: postgres: cannot parse the connection URL")
	}
	rp := cfg.ConnConfig.RuntimeParams
	if opts.Schema == "" {
		opts.Schema = DefaultSchema
		if sp := strings.TrimSpace(rp["search_path"]); sp != "" {
			if strings.ContainsAny(sp, ",\"") {
				return nil, fmt.Errorf("ledger: postgres: search_path %q: name the one schema of the ledger", sp)
			}
			opts.Schema = sp
		}
	}
	where := fmt.Sprintf("%s@%s:%d/%s schema %s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, opts.Schema)
	cfg.MaxConns = opts.MaxConns
	// Every statement names its tables without a schema.
	rp["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	// A mark is durable before its request leaves: a commit must be on
	// disk when it returns. The URL may ask for more (remote_apply).
	if _, ok := rp["synchronous_commit"]; !ok {
		rp["synchronous_commit"] = "on"
	}
	// Each statement is planned for its arguments: a generic plan, made
	// once a statement has run a few times, is costed on the table as it
	// was then, and a lookup planned on the nearly empty rows table of a
	// fresh load scans the whole table ever after, 60 times slower.
	if _, ok := rp["plan_cache_mode"]; !ok {
		rp["plan_cache_mode"] = "force_custom_plan"
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "bulkcreate"
	}
	// A run's lock dies with its connection; keepalives end the connection of a
	// process whose machine vanished within about half a minute, not the
	// hours of the kernel's default. (Ignored on a Unix socket, where a
	// peer's death is seen at once.)
	for k, v := range map[string]string{"tcp_keepalives_idle": "15", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"} {
		if _, ok := rp[k]; !ok {
			rp[k] = v
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", where, err)
	}
	l := &Ledger{pool: pool, schema: opts.Schema, lockCheckEvery: lockCheckEvery, runs: map[*Run]struct{}{}}
	if err := l.migrate(ctx, opts.MustExist, 0); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", where, err)
	}
	if err := pool.QueryRow(ctx, `SELECT oid FROM pg_namespace WHERE nspname = $1`, opts.Schema).Scan(&l.schemaOID); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", where, err)
	}
	w, err := newWriter(ctx, pool, opts.MaxBatch, opts.Timeout)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", where, err)
	}
	l.w, l.timeout = w, opts.Timeout
	return l, nil
}

// Schema is the schema that holds the ledger's tables.
func (l *Ledger) Schema() string { return l.schema }

// Close commits pending writes, releases the locks of runs not finished
// and closes the connections; it returns the first error. A run not
// finished is left as a dead run would be: "running", its rows in flight;
// the next StartRun on its target marks it crashed and its rows in_doubt.
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
	l.pool.Close()
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

// migrate applies the embedded migrations the schema lacks, up to version
// upto (0: all), each in a transaction of its own. Concurrent first opens
// apply each once: a migration's transaction holds an advisory lock for
// the schema while it reads the versions and applies.
//
// A migration is applied when its version is not recorded, not when it is
// above the highest recorded: numbers are taken by parallel lines of work
// (a schema may hold 0005 before it holds 0004), and a gap is filled when
// the missing migration arrives.
func (l *Ledger) migrate(ctx context.Context, mustExist bool, upto int) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	have, known, err := l.schemaState(ctx)
	if err != nil {
		return err
	}
	switch {
	case known && have > latest:
		return newerSchema(have, latest)
	case !known && mustExist:
		return fmt.Errorf("%w: no schema %s with a ledger in it", ledger.ErrNotFound, l.schema)
	}
	if known {
		missing, err := l.missingMigrations(ctx, ms)
		if err != nil {
			return err
		}
		if !missing {
			return nil // the common case, and a reader's: nothing written
		}
	}
	for _, m := range ms {
		if upto > 0 && m.version > upto {
			break
		}
		if err := l.applyMigration(ctx, m, latest); err != nil {
			return err
		}
	}
	return nil
}

// schemaState reads the schema's migration version; known is false when
// the schema has no ledger yet, and an error says when it holds another
// program's tables.
func (l *Ledger) schemaState(ctx context.Context) (version int, known bool, err error) {
	var tables int
	var hasMigrations bool
	if err := l.pool.QueryRow(ctx, `SELECT COUNT(*), COALESCE(bool_or(c.relname = 'schema_migrations'), false)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`, l.schema).Scan(&tables, &hasMigrations); err != nil {
		return 0, false, err
	}
	if tables > 0 && !hasMigrations {
		return 0, false, fmt.Errorf("%w: schema %s holds tables but no schema_migrations", ledger.ErrNotLedger, l.schema)
	}
	if !hasMigrations {
		return 0, false, nil
	}
	err = l.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version)
	return version, true, err
}

// missingMigrations reports whether any of ms is not recorded as applied.
func (l *Ledger) missingMigrations(ctx context.Context, ms []migration) (bool, error) {
	versions := make([]int32, len(ms))
	for i, m := range ms {
		versions[i] = int32(m.version)
	}
	var applied int
	err := l.pool.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ANY ($1)`, versions).Scan(&applied)
	return applied < len(ms), err
}

func newerSchema(have, latest int) error {
	return fmt.Errorf("%w (schema version %d, this bulkcreate knows %d)", ledger.ErrNewerSchema, have, latest)
}

// migrationLock is the advisory lock key, with the schema's name, under
// which migrations apply; another program's two-key locks would have to
// pick the same number to meet it.
const migrationLock = 0x62756c6b // "bulk"

func (l *Ledger) applyMigration(ctx context.Context, m migration, latest int) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The schema has no oid before it exists: lock on its name's hash.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, migrationLock, l.schema); err != nil {
		return err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, l.schema).Scan(&exists); err != nil {
		return err
	}
	// Not CREATE SCHEMA IF NOT EXISTS: it asks for the right to create
	// schemas even when the schema is there.
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{l.schema}.Sanitize()); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	var have int
	var applied bool
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0), COALESCE(bool_or(version = $1), false) FROM schema_migrations`,
		m.version).Scan(&have, &applied); err != nil {
		return err
	}
	if have > latest {
		return newerSchema(have, latest)
	}
	if applied {
		return nil
	}
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	return nil
}

// targetID returns the id of target, creating it when create is set; ok is
// false when it does not exist and create is not set.
func (l *Ledger) targetID(ctx context.Context, target string, create bool) (id int64, ok bool, err error) {
	if v, ok := l.targets.Load(target); ok {
		return v.(int64), true, nil
	}
	err = l.pool.QueryRow(ctx, `SELECT id FROM targets WHERE name = $1`, target).Scan(&id)
	switch {
	case err == nil:
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, false, err
	case !create:
		return 0, false, nil
	default:
		// DO UPDATE, not DO NOTHING: it returns the id when another
		// process created the target first.
		err = l.pool.QueryRow(ctx, `INSERT INTO targets (name) VALUES ($1)
			ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id`, target).Scan(&id)
		if err != nil {
			return 0, false, err
		}
	}
	l.targets.Store(target, id)
	return id, true, nil
}
