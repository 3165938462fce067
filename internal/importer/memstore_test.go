package importer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ledger/memstore"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// memoryStore is a memstore.Store as the importer's Store.
type memoryStore struct{ *memstore.Store }

func (s memoryStore) StartRun(ctx context.Context, info ledger.RunInfo) (importer.Run, error) {
	r, err := s.Store.StartRun(ctx, info)
	if err != nil {
		return nil, err
	}
	return memoryRun{r}, nil
}

type memoryRun struct{ *memstore.Run }

func (r memoryRun) MarkInFlightCommitted(ctx context.Context, sends []ledger.Send) (importer.Pending, error) {
	return r.Run.MarkInFlightCommitted(ctx, sends)
}

// TestImport_RunsOnAnyStore: the importer needs no SQLite; against the
// memory store, a file is created once and a second run sends nothing.
func TestImport_RunsOnAnyStore(t *testing.T) {
	t.Parallel()
	srv, err := sandbox.NewServer(sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := ripio.New(ripio.Config{BaseURL: srv.URL(), ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	store := memoryStore{memstore.New()}
	data, emails := genCSV(300, "mem")
	for run, want := range []importer.Counts{
		{Read: 300, Created: 300},
		{Read: 300, Skipped: 300},
	} {
		im := importer.New(importer.Config{SourceFile: "m.csv", Backoff: time.Millisecond}, client, ratelimit.New(ratelimit.Config{}), store, "t")
		sum, err := im.Import(t.Context(), strings.NewReader(data))
		if err != nil {
			t.Fatalf("import %d: %v", run+1, err)
		}
		if sum.Counts != want {
			t.Errorf("import %d: %+v, want %+v", run+1, sum.Counts, want)
		}
	}
	if got := len(srv.Customers()); got != len(emails) {
		t.Errorf("server holds %d customers, want %d", got, len(emails))
	}
	rep, err := store.Report(t.Context(), "t", 10)
	if err != nil || rep.Rows != len(emails) || len(rep.Runs) != 2 {
		t.Errorf("memory store's report = %+v, %v; want %d rows, 2 runs", rep, err, len(emails))
	}
}
