package memstore_test

import (
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/ledger/memstore"
	"github.com/bulkcreate/bulkcreate/internal/ledger/storetest"
)

// TestStore_Conformance runs the store conformance suite against the memory
// store; a crash is Close, which leaves unfinished runs as dead ones.
func TestStore_Conformance(t *testing.T) {
	t.Parallel()
	storetest.Test(t, storetest.Harness[*memstore.Run, *memstore.Store]{
		Open: func(*testing.T, string) *memstore.Store { return memstore.New() },
		Crash: func(t *testing.T, s *memstore.Store, _ string) *memstore.Store {
			if err := s.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			return s
		},
		RunID: func(r *memstore.Run) int64 { return r.ID },
	})
}
