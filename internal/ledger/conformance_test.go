package ledger_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ledger/storetest"
)

// TestLedger_Conformance runs the store conformance suite against the
// SQLite ledger; a crash is the ledger closed with its runs unfinished, as
// when its process dies, and the file opened again.
func TestLedger_Conformance(t *testing.T) {
	t.Parallel()
	open := func(t *testing.T, dir string) *ledger.Ledger {
		t.Helper()
		l, err := ledger.Open(context.Background(), filepath.Join(dir, "ledger.db"), ledger.Options{})
		if err != nil {
			t.Fatalf("ledger.Open = %v", err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	reopen := func(t *testing.T, l *ledger.Ledger, dir string) *ledger.Ledger {
		t.Helper()
		if err := l.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		return open(t, dir)
	}
	storetest.Test(t, storetest.Harness[*ledger.Run, *ledger.Ledger]{
		Open: open, Crash: reopen, Reopen: reopen, Durable: true,
		RunID: func(r *ledger.Run) int64 { return r.ID },
	})
}
