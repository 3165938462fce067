package postgres

import (
	"sync"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/ledger/storetest"
)

// TestLedger_Conformance runs the store conformance suite against the
// PostgreSQL store, each of its tests in a schema of its own (the suite's
// dir names it). A crash is the ledger closed with its runs unfinished:
// their connections, and so their locks, end as a dead process's would.
func TestLedger_Conformance(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	var mu sync.Mutex
	schemas := map[string]string{} // the suite's dir -> its schema
	open := func(t *testing.T, dir string) *Ledger {
		t.Helper()
		mu.Lock()
		schema, ok := schemas[dir]
		if !ok {
			schema = newSchema(t, url)
			schemas[dir] = schema
		}
		mu.Unlock()
		return openLedger(t, url, schema)
	}
	reopen := func(t *testing.T, l *Ledger, dir string) *Ledger {
		t.Helper()
		if err := l.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		return open(t, dir)
	}
	storetest.Test(t, storetest.Harness[*Run, *Ledger]{
		Open: open, Crash: reopen, Reopen: reopen, Durable: true,
		RunID: func(r *Run) int64 { return r.ID },
	})
}
