package sandbox

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// Outcomes of store.insert besides success.
var (
	errDuplicateID    = errors.New("customerId already exists")
	errDuplicateEmail = errors.New("email already exists")
	errStoreClosed    = errors.New("sandbox: store closed")
)

// store keeps the customers the fake has created, in memory or in a SQLite
// file. It is safe for concurrent use: mu serialises every access, so the
// duplicate checks and the insert that follows them are one step.
type store struct {
	mu      sync.Mutex
	closed  bool                // the database is closed
	db      *sql.DB             // nil when in memory
	byID    map[string]Customer // in memory only
	byEmail map[string]int      // lower-cased email -> customers holding it; in memory only
}

const schema = `
CREATE TABLE IF NOT EXISTS customers (
	customer_id TEXT PRIMARY KEY,
	email       TEXT NOT NULL,
	email_lower TEXT NOT NULL,
	type        TEXT NOT NULL,
	created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS customers_email_lower ON customers (email_lower);
`

// openStore opens the store at path, or an in-memory one when path is empty.
func openStore(path string) (*store, error) {
	if path == "" {
		return &store{byID: map[string]Customer{}, byEmail: map[string]int{}}, nil
	}
	// go-sqlite3 cuts the DSN at the first '?', so such a path cannot be named.
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sandbox: open %s: path must not contain '?'", path)
	}
	// Create the file ourselves so that it is private; SQLite gives the WAL
	// and shared-memory files the same mode as the database.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sandbox: open %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sandbox: open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite3", path+"?_busy_timeout=5000&_journal_mode=WAL")
	if err != nil {
		return nil, fmt.Errorf("sandbox: open %s: %w", path, err)
	}
	// mu already serialises every use; one connection keeps it that way
	// inside database/sql too.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("sandbox: open %s: create schema: %w", path, err)
	}
	return &store{db: db}, nil
}

// insert stores c unless a customer with the same CustomerID exists
// (errDuplicateID) or, with uniqueEmail, one with the same email in any case
// (errDuplicateEmail).
func (s *store) insert(c Customer, uniqueEmail bool) error {
	lower := strings.ToLower(c.Email)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStoreClosed
	}

	if s.db == nil {
		if _, ok := s.byID[c.CustomerID]; ok {
			return errDuplicateID
		}
		if uniqueEmail && s.byEmail[lower] > 0 {
			return errDuplicateEmail
		}
		s.byID[c.CustomerID] = c
		s.byEmail[lower]++
		return nil
	}

	// One statement, so that the checks hold even if another process shares
	// the file.
	res, err := s.db.Exec(`
		INSERT INTO customers (customer_id, email, email_lower, type, created_at)
		SELECT ?, ?, ?, ?, ?
		WHERE NOT ? OR NOT EXISTS (SELECT 1 FROM customers WHERE email_lower = ?)
		ON CONFLICT (customer_id) DO NOTHING`,
		c.CustomerID, c.Email, lower, c.Type, c.CreatedAt.UTC().Format(time.RFC3339Nano),
		uniqueEmail, lower)
	if err != nil {
		return fmt.Errorf("sandbox: insert customer: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sandbox: insert customer: %w", err)
	}
	if n == 1 {
		return nil
	}
	if _, ok, err := s.getLocked(c.CustomerID); err != nil {
		return err
	} else if ok {
		return errDuplicateID
	}
	return errDuplicateEmail
}

func (s *store) get(id string) (Customer, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getLocked(id)
}

func (s *store) getLocked(id string) (Customer, bool, error) {
	if s.closed {
		return Customer{}, false, errStoreClosed
	}
	if s.db == nil {
		c, ok := s.byID[id]
		return c, ok, nil
	}
	row := s.db.QueryRow(`SELECT customer_id, email, type, created_at FROM customers WHERE customer_id = ?`, id)
	c, err := scanCustomer(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Customer{}, false, nil
	}
	if err != nil {
		return Customer{}, false, err
	}
	return c, true, nil
}

// all returns every customer sorted by CustomerID.
func (s *store) all() ([]Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errStoreClosed
	}

	if s.db == nil {
		cs := make([]Customer, 0, len(s.byID))
		for _, c := range s.byID {
			cs = append(cs, c)
		}
		slices.SortFunc(cs, func(a, b Customer) int { return strings.Compare(a.CustomerID, b.CustomerID) })
		return cs, nil
	}

	rows, err := s.db.Query(`SELECT customer_id, email, type, created_at FROM customers ORDER BY customer_id`)
	if err != nil {
		return nil, fmt.Errorf("sandbox: list customers: %w", err)
	}
	defer rows.Close()
	var cs []Customer
	for rows.Next() {
		c, err := scanCustomer(rows.Scan)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: list customers: %w", err)
	}
	return cs, nil
}

func scanCustomer(scan func(...any) error) (Customer, error) {
	var c Customer
	var created string
	if err := scan(&c.CustomerID, &c.Email, &c.Type, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Customer{}, err
		}
		return Customer{}, fmt.Errorf("sandbox: read customer: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, created)
	if err != nil {
		return Customer{}, fmt.Errorf("sandbox: read customer %q: created_at: %w", c.CustomerID, err)
	}
	c.CreatedAt = t
	c.IsActive = true // the fake has no deactivate endpoint
	return c, nil
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A memory store holds nothing to release and stays readable.
	if s.closed || s.db == nil {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sandbox: close store: %w", err)
	}
	return nil
}
