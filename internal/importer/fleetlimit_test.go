package importer_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ledger/memstore"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// limitWorker is a fakeWorker whose chunks 1 and 2 are of run 1, which has
// a limit of maxErrors, and chunk 3 of run 2, which has none; it counts
// the errors recorded for run 1 and records its stop, as a PostgreSQL
// worker does in the ledger.
type limitWorker struct {
	*fakeWorker
	maxErrors int
	mu        sync.Mutex
	stops     []string
}

func newLimitWorker(maxErrors int) *limitWorker {
	w := &limitWorker{fakeWorker: newFakeWorker(3, 10), maxErrors: maxErrors}
	for i := range w.chunks {
		w.chunks[i].RunID = 1
	}
	w.chunks[2].RunID = 2
	return w
}

func (w *limitWorker) RunLimit(_ context.Context, run int64) (ledger.RunLimit, error) {
	if run != 1 {
		return ledger.RunLimit{}, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	lim := ledger.RunLimit{MaxErrors: w.maxErrors}
	if len(w.stops) > 0 {
		lim.Stopped = w.stops[0]
	}
	return lim, nil
}

func (w *limitWorker) RunErrors(_ context.Context, run int64) (errs, finished int64, err error) {
	w.fakeWorker.mu.Lock()
	defer w.fakeWorker.mu.Unlock()
	for key, st := range w.status {
		if !strings.HasPrefix(key, "email:c2") { // chunks 1 and 2: run 1
			switch st {
			case row.Rejected, row.Failed, row.InDoubt:
				errs++
				finished++
			case row.Created, row.Exists:
				finished++
			}
		}
	}
	return errs, finished, nil
}

func (w *limitWorker) StopRun(_ context.Context, _ int64, reason string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stops = append(w.stops, reason)
	return nil
}

// runRejecter rejects the rows of chunks 1 and 2 (run 1) and creates those
// of chunk 3 (run 2), counting the requests for each.
type runRejecter struct {
	mu           sync.Mutex
	first, other int
}

func (s *runRejecter) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasPrefix(req.Email, "c2") {
		s.other++
		return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: true}, nil
	}
	s.first++
	return ripio.Customer{}, &ripio.APIError{Status: http.StatusBadRequest, Code: 20000, Type: "ValidationError", Message: "email: invalid"}
}

// TestWork_AFleetImportsMaxErrorsStopsThatImportOnlyAndPutsItsRowsBack: a
// worker whose store applies each run's limit (RunStopper) sends the rows
// of an import with a limit of 3 errors, all rejected, then those of
// another import. With its pool one row wide, the third rejection stops
// the first import in the store, with the reason; no further row of it is
// sent (each is put back queued, and its chunks are given back, not done);
// and the worker goes on to create every row of the other import, and
// ends without an error: another import's limit is no reason to stop.
func TestWork_AFleetImportsMaxErrorsStopsThatImportOnlyAndPutsItsRowsBack(t *testing.T) {
	t.Parallel()
	w := newLimitWorker(3)
	srv := &runRejecter{}
	im := importer.New(importer.Config{Concurrency: 1}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	idle := func(context.Context) (bool, error) {
		w.fakeWorker.mu.Lock()
		defer w.fakeWorker.mu.Unlock()
		return len(w.chunks) == 0, nil
	}
	if _, err := im.Work(t.Context(), w, importer.WorkConfig{Done: idle}); err != nil {
		t.Fatalf("Work() = %v, want nil", err)
	}
	if srv.first != 3 || srv.other != 10 {
		t.Errorf("requests: %d for the limited import, %d for the other; want 3 and 10", srv.first, srv.other)
	}
	if len(w.stops) != 1 || !strings.Contains(w.stops[0], "--max-errors 3") {
		t.Errorf("StopRun calls: %q; want one, naming --max-errors 3", w.stops)
	}
	rejected := 0
	for key, st := range w.status {
		switch {
		case strings.HasPrefix(key, "email:c2"):
		case st == row.Rejected:
			rejected++
		case st != row.Queued: // put back; a row never marked has no status
			t.Errorf("row %s of the limited import: %s, want rejected, or put back queued", key, st)
		}
	}
	if rejected != 3 {
		t.Errorf("%d rows of the limited import rejected, want 3", rejected)
	}
	for c := int64(1); c <= 2; c++ {
		if finished, ok := w.ended[c]; !ok || finished {
			t.Errorf("chunk %d of the limited import: ended %v, finished %v; want given back", c, ok, finished)
		}
	}
	if finished := w.ended[3]; !finished {
		t.Errorf("chunk 3 of the other import: not ended done")
	}
}

// stoppedQueueStore is a queueStore whose run the fleet has stopped for
// its error limit, and which keeps how the load ended.
type stoppedQueueStore struct {
	*queueStore
	loaded []ledger.RunEnd
}

func (s *stoppedQueueStore) StartRun(context.Context, ledger.RunInfo) (importer.Run, error) {
	return s, nil
}

func (s *stoppedQueueStore) StopReason(context.Context) (string, error) {
	return "5 rows rejected, failed or in doubt (--max-errors 5)", nil
}

func (s *stoppedQueueStore) Loaded(ctx context.Context, end ledger.RunEnd) error {
	s.loaded = append(s.loaded, end)
	return s.queueStore.Loaded(ctx, end)
}

// TestImport_ALoadWhoseImportTheFleetStoppedStopsLoading: an import with
// --max-errors that loads its rows for workers (Config.Queue) stops
// loading once the fleet has stopped its run for the limit (workers send
// its first chunks while it loads the rest): it queues nothing more,
// returns ErrTooManyErrors with the reason, and ends its load as loaded,
// aborted, so that the ledger ends the run once its chunks are given back.
func TestImport_ALoadWhoseImportTheFleetStoppedStopsLoading(t *testing.T) {
	t.Parallel()
	data, _ := genCSV(600, "stop")
	s := &stoppedQueueStore{queueStore: &queueStore{rows: map[string]ledger.Send{}}}
	im := importer.New(importer.Config{SourceFile: "q.csv", Queue: true, MarkAhead: 100, MaxErrors: 5}, nil, nil, s, "t")
	sum, err := im.Import(t.Context(), strings.NewReader(data))
	if !errors.Is(err, importer.ErrTooManyErrors) || !strings.Contains(err.Error(), "--max-errors 5") {
		t.Errorf("Import() = %v, want ErrTooManyErrors naming --max-errors 5", err)
	}
	if len(s.rows) != 0 {
		t.Errorf("%d rows queued after the run was stopped, want 0", len(s.rows))
	}
	if len(s.loaded) != 1 || s.loaded[0].Outcome != "aborted" || sum.Outcome != "aborted" {
		t.Errorf("load ended %+v, summary outcome %q; want one Loaded, aborted", s.loaded, sum.Outcome)
	}
}
