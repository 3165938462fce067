package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

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
// transaction of its own.
func migrate(ctx context.Context, db *sql.DB) error { return migrateTo(ctx, db, 0) }

// migrateTo is migrate up to version upto (0: all); tests use it to make
// ledgers of an older schema.
func migrateTo(ctx context.Context, db *sql.DB, upto int) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	// One connection, so that the checks and the migrations see one file.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var tables, known int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(name = 'schema_migrations'), 0)
		FROM sqlite_master WHERE type = 'table'`).Scan(&tables, &known); err != nil {
		return err
	}
	if tables > 0 && known == 0 {
		return errForeignDB // never write into another program's database
	}
	if known > 0 {
		// The common case, and the only one for a reader: nothing to do,
		// and no write lock taken to find that out.
		have, err := schemaVersion(ctx, conn)
		if err != nil {
			return err
		}
		if have > latest {
			return newerSchema(have, latest)
		}
		if have == latest {
			return nil
		}
	}
	for _, m := range ms {
		if upto > 0 && m.version > upto {
			break
		}
		if err := applyMigration(ctx, conn, m, latest); err != nil {
			return err
		}
	}
	return nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q queryRower) (int, error) {
	var have int
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have)
	return have, err
}

func newerSchema(have, latest int) error {
	return fmt.Errorf("%w (schema version %d, this bulkcreate knows %d)", ErrNewerSchema, have, latest)
}

// applyMigration applies m unless the file has it. The version is read
// inside m's transaction, which is immediate (it holds the write lock), so
// two processes opening a new ledger at once apply m once.
func applyMigration(ctx context.Context, conn *sql.Conn, m migration, latest int) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return err
	}
	have, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if have > latest {
		return newerSchema(have, latest)
	}
	if m.version <= have {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, now()); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	return nil
}
