package ledger

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Prior is what the ledger knows of a key before this run touches it.
type Prior struct {
	Status         row.Status
	Email          string
	Type           string
	CustomerIDSent string
	CustomerID     string
	Fingerprint    string
	SourceFile     string
	SourceLine     int
	Attempts       int
	FoldedEmail    string // as Send.FoldedEmail
	LastRun        int64  // the run that wrote the row last; 0 (not known): Release keeps the row's
	Message        string // the row's error message
}

// Lookup returns what the ledger holds on target for each of keys that it
// knows. It only reads: a dry run uses it without starting a run.
func (l *Ledger) Lookup(ctx context.Context, target string, keys []string) (map[string]Prior, error) {
	tid, ok, err := l.targetID(ctx, target, false)
	if err != nil {
		return nil, fmt.Errorf("ledger: lookup: %w", err)
	}
	if !ok {
		return map[string]Prior{}, nil
	}
	return l.lookup(ctx, tid, keys, byKey)
}

// LookupByEmail returns, for each of emails that a row holds as its
// Send.FoldedEmail on target, that row; of several, the one whose customer
// most surely exists (done, then in doubt or in flight). It only reads.
func (l *Ledger) LookupByEmail(ctx context.Context, target string, emails []string) (map[string]Prior, error) {
	tid, ok, err := l.targetID(ctx, target, false)
	if err != nil {
		return nil, fmt.Errorf("ledger: lookup by email: %w", err)
	}
	if !ok {
		return map[string]Prior{}, nil
	}
	return l.lookup(ctx, tid, emails, byEmail)
}

// lookupChunk is the most keys one statement asks for; SQLite caps a
// statement's parameters at 32766.
const lookupChunk = 500

// lookup reads through the driver, below database/sql: a resume reads a
// million rows, and database/sql's per-column conversions (an int goes
// through a string) and locks cost more than SQLite's own work.
func (l *Ledger) lookup(ctx context.Context, targetID int64, keys []string, by lookupBy) (map[string]Prior, error) {
	out := make(map[string]Prior, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger: lookup: %w", classifySQLite(err))
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot query", dc)
		}
		args := make([]driver.NamedValue, 0, min(len(keys), lookupChunk)+1)
		dest := make([]driver.Value, 1+len(priorFields))
		for start := 0; start < len(keys); start += lookupChunk {
			part := keys[start:min(start+lookupChunk, len(keys))]
			args = append(args[:0], driver.NamedValue{Ordinal: 1, Value: targetID})
			for i, k := range part {
				args = append(args, driver.NamedValue{Ordinal: i + 2, Value: k})
			}
			// The same text for every full chunk: the connection's statement
			// cache prepares it once.
			rows, err := c.QueryContext(ctx, by.query(len(part)), args)
			if err != nil {
				return err
			}
			for {
				err := rows.Next(dest)
				if err == io.EOF {
					break
				}
				if err != nil {
					rows.Close()
					return err
				}
				k := text(dest[0])
				st := row.Status(text(dest[1]))
				if p, ok := out[k]; ok && existence(p.Status) >= existence(st) {
					continue // by email, several rows: the one most surely existing wins
				}
				var p Prior
				for i, f := range priorFields {
					f.set(&p, dest[i+1])
				}
				out[k] = p
			}
			if err := rows.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: lookup: %w", classifySQLite(err))
	}
	return out, nil
}

// lookupBy is how lookup finds rows: its statement, whose first column is
// what the result is keyed by and IN (%s) takes the chunk's values.
type lookupBy struct {
	sql  string
	full string // sql for a full chunk: one text, prepared once
}

func newLookupBy(sql string) lookupBy {
	b := lookupBy{sql: sql}
	b.full = b.query(lookupChunk)
	return b
}

func (b lookupBy) query(n int) string {
	if n == lookupChunk && b.full != "" {
		return b.full
	}
	return fmt.Sprintf(b.sql, "?"+strings.Repeat(",?", n-1))
}

// priorFields are the columns lookup reads into a Prior, after the column
// it keys the result by; a column and where its value goes, side by side.
var priorFields = []struct {
	column string
	set    func(p *Prior, v driver.Value)
}{
	{"status", func(p *Prior, v driver.Value) { p.Status = row.Status(text(v)) }},
	{"email", func(p *Prior, v driver.Value) { p.Email = text(v) }},
	{"type", func(p *Prior, v driver.Value) { p.Type = text(v) }},
	{"customer_id_sent", func(p *Prior, v driver.Value) { p.CustomerIDSent = text(v) }},
	{"customer_id", func(p *Prior, v driver.Value) { p.CustomerID = text(v) }},
	{"fingerprint", func(p *Prior, v driver.Value) { p.Fingerprint = text(v) }},
	{"source_file", func(p *Prior, v driver.Value) { p.SourceFile = text(v) }},
	{"source_line", func(p *Prior, v driver.Value) { p.SourceLine = int(integer(v)) }},
	{"attempts", func(p *Prior, v driver.Value) { p.Attempts = int(integer(v)) }},
	{"folded_email", func(p *Prior, v driver.Value) { p.FoldedEmail = text(v) }},
	{"last_run", func(p *Prior, v driver.Value) { p.LastRun = integer(v) }},
	{"error_message", func(p *Prior, v driver.Value) { p.Message = text(v) }},
}

var priorColumns = func() string {
	cols := make([]string, len(priorFields))
	for i, f := range priorFields {
		cols[i] = f.column
	}
	return strings.Join(cols, ", ")
}()

var (
	byKey = newLookupBy(`SELECT row_key, ` + priorColumns + ` FROM rows WHERE target_id = ? AND row_key IN (%s)`)
	// The != '' term is the partial index's own.
	byEmail = newLookupBy(`SELECT folded_email, ` + priorColumns + ` FROM rows INDEXED BY rows_by_email
		WHERE target_id = ? AND folded_email != '' AND folded_email IN (%s)`)
)

// text and integer read a column as the driver returns it: TEXT as string,
// INTEGER as int64.
func text(v driver.Value) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func integer(v driver.Value) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}
