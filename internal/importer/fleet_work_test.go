package importer_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/memstore"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// failingPacer's Wait fails, its context alive: fleetrate's Pacer does so
// once its budget's statements have failed for Config.GiveUp (30 s), or
// at once for ErrNoBudget.
type failingPacer struct{ freePacer }

func (failingPacer) Reserve(context.Context) (func(context.Context) error, error) {
	return nil, errors.New("fleetrate: budget unreachable")
}

// TestWork_AChunkWithRowsPutBackIsGivenBackNotDone: when the pacer fails
// (a fleet budget the worker cannot reach), send puts each row back as the
// claim found it (queued) and stops the run with the pacer's error: the
// chunk is given back, not ended done (a queued row of a done chunk would
// be owed by no chunk, and a later import would skip it as queued by
// another), and Work reports the error.
func TestWork_AChunkWithRowsPutBackIsGivenBackNotDone(t *testing.T) {
	t.Parallel()
	w := newFakeWorker(1, 3)
	srv := &countingSender{w: w}
	im := importer.New(importer.Config{Concurrency: 2}, srv, failingPacer{}, memoryStore{memstore.New()}, "t")
	idle := func(context.Context) (bool, error) { w.mu.Lock(); defer w.mu.Unlock(); return len(w.chunks) == 0, nil }
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sum, err := im.Work(ctx, w, importer.WorkConfig{Done: idle})
	w.mu.Lock()
	defer w.mu.Unlock()
	queued := 0
	for _, st := range w.status {
		if st == row.Queued {
			queued++
		}
	}
	if w.ended[1] && queued > 0 {
		t.Errorf("chunk 1 ended done (finished) with %d of its rows put back queued, never sent: no claim will take them again", queued)
	}
	if err == nil && sum.NotDone() == 0 {
		t.Errorf("Work() = nil, summary %+v (%d requests): a worker that sent none of the %d rows it took reports success (exit 0)",
			sum.Counts, srv.n, sum.Read)
	}
}

// assignsLaterStore is a store on which another process records, at some
// point, that the target assigns its own customer ids.
type assignsLaterStore struct {
	memoryStore
	assigns *atomic.Bool
}

func (s assignsLaterStore) AssignsIDs(context.Context, string) (bool, error) {
	return s.assigns.Load(), nil
}

// discoveringPacer lets each request leave once another worker of the
// fleet has recorded, in the store, that the target assigns its own ids:
// the time a row waits in a pacer (its chunk's turn, a pause) is when
// that happens.
type discoveringPacer struct {
	freePacer
	assigns *atomic.Bool
}

func (p discoveringPacer) Reserve(ctx context.Context) (func(context.Context) error, error) {
	p.assigns.Store(true)
	return nil, ctx.Err()
}

// TestWork_HoldsAnInDoubtRowOnceTheFleetRecordedTheTargetAssignsIDs: a
// worker claims a chunk with a row in doubt (a dead worker's); while it
// waits to send it, another worker learns that the target assigns its own
// ids and records it in the ledger. A row in doubt is then not sent again
// (it could be a second customer): after the pacer's wait, send asks the
// store, not only this process's knowledge of its last claim.
func TestWork_HoldsAnInDoubtRowOnceTheFleetRecordedTheTargetAssignsIDs(t *testing.T) {
	t.Parallel()
	w := newFakeWorker(1, 1)
	w.chunks[0].Rows[0].Prior.Status = row.InDoubt
	w.chunks[0].Rows[0].Prior.Message = "the lease of worker 7 on its chunk ran out before an answer came"
	assigns := new(atomic.Bool)
	srv := &countingSender{w: w}
	im := importer.New(importer.Config{Concurrency: 1, MaxAttempts: 3}, srv, discoveringPacer{assigns: assigns},
		assignsLaterStore{memoryStore{memstore.New()}, assigns}, "t")
	idle := func(context.Context) (bool, error) { w.mu.Lock(); defer w.mu.Unlock(); return len(w.chunks) == 0, nil }
	if _, err := im.Work(t.Context(), w, importer.WorkConfig{Done: idle}); err != nil {
		t.Fatalf("Work() = %v", err)
	}
	if srv.n != 0 {
		t.Errorf("a row in doubt was sent %d times after the ledger recorded that the target assigns its own ids; want 0 (held in doubt): a second customer", srv.n)
	}
}
