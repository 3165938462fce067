package importer_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// queueStore is a store that queues rows for workers, keeping them in
// memory: committed once synced, as the PostgreSQL ledger's writer does.
type queueStore struct {
	importer.Run // unused writes panic
	empty        bool
	mu           sync.Mutex
	rows         map[string]ledger.Send // committed
	ahead        []ledger.Send          // queued ahead, not yet committed
	lookups      int
	blindLookups int // lookups made while rows queued ahead were not committed
	issues       []ledger.LineIssue
}

func (s *queueStore) Lookup(_ context.Context, _ string, keys []string) (map[string]ledger.Prior, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	if len(s.ahead) > 0 {
		s.blindLookups++
	}
	out := map[string]ledger.Prior{}
	for _, k := range keys {
		if r, ok := s.rows[k]; ok {
			out[k] = ledger.Prior{Status: row.Queued, Email: r.Email, Type: r.Type, CustomerIDSent: r.CustomerID, SourceLine: r.SourceLine}
		}
	}
	return out, nil
}

func (s *queueStore) LookupByEmail(context.Context, string, []string) (map[string]ledger.Prior, error) {
	return map[string]ledger.Prior{}, nil
}
func (s *queueStore) AssignsIDs(context.Context, string) (bool, error) { return false, nil }
func (s *queueStore) KeepsIDs(context.Context, string) (bool, error)   { return false, nil }
func (s *queueStore) StartRun(context.Context, ledger.RunInfo) (importer.Run, error) {
	return s, nil
}
func (s *queueStore) TargetEmpty(context.Context) (bool, error) { return s.empty, nil }

func (s *queueStore) Queue(ctx context.Context, sends []ledger.Send) error {
	if err := s.QueueAhead(ctx, sends); err != nil {
		return err
	}
	return s.QueueSync(ctx)
}

func (s *queueStore) QueueAhead(_ context.Context, sends []ledger.Send) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ahead = append(s.ahead, sends...)
	return nil
}

func (s *queueStore) QueueSync(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.ahead {
		s.rows[r.Key] = r
	}
	s.ahead = nil
	return nil
}

func (s *queueStore) Loaded(ctx context.Context, _ ledger.RunEnd) error { return s.QueueSync(ctx) }

func (s *queueStore) RecordLineIssue(_ context.Context, li ledger.LineIssue) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issues = append(s.issues, li)
	return nil
}

// TestImport_ALoadIntoAnEmptyTargetPlansWithoutLookups: a file without a
// customerId column loaded into a target that holds no row is planned
// without lookups but for the one batch with an email of a legacy form,
// which is looked up once every row queued before it is committed; the
// file's repeat is still refused, and every other row queued once. Into a
// target that holds rows, every batch is looked up.
func TestImport_ALoadIntoAnEmptyTargetPlansWithoutLookups(t *testing.T) {
	t.Parallel()
	data, _ := genCSV(600, "load")
	data += "load00000@example.com,INDIVIDUAL\nStraße@example.com,INDIVIDUAL\n" // a repeat; a legacy form
	for _, tc := range []struct {
		empty   bool
		lookups int
	}{{empty: true, lookups: 1}, {empty: false, lookups: 3}} {
		s := &queueStore{empty: tc.empty, rows: map[string]ledger.Send{}}
		im := importer.New(importer.Config{SourceFile: "q.csv", Queue: true}, nil, nil, s, "t")
		sum, err := im.Import(t.Context(), strings.NewReader(data))
		if err != nil {
			t.Fatalf("empty %v: Import() = %v", tc.empty, err)
		}
		if s.lookups != tc.lookups || s.blindLookups != 0 {
			t.Errorf("empty %v: %d lookups, %d before the rows queued ahead were committed; want %d, 0",
				tc.empty, s.lookups, s.blindLookups, tc.lookups)
		}
		if sum.ToSend != 601 || sum.Duplicate != 1 || len(s.rows) != 601 || len(s.issues) != 1 {
			t.Errorf("empty %v: %d queued, %d duplicate, %d rows held, %d line issues; want 601, 1, 601, 1",
				tc.empty, sum.ToSend, sum.Duplicate, len(s.rows), len(s.issues))
		}
	}
}
