package importer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ledger/memstore"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

var errLost = errors.New("lease lost")

// fakeWorker hands out chunks and keeps what is written of their rows.
type fakeWorker struct {
	importer.Run // unused writes panic
	mu           sync.Mutex
	chunks       []ledger.Chunk
	status       map[string]row.Status
	ended        map[int64]bool // chunk -> finished
	lost         bool
	marks        int // rows marked in flight
}

func newFakeWorker(chunks, rows int) *fakeWorker {
	w := &fakeWorker{status: map[string]row.Status{}, ended: map[int64]bool{}}
	for c := range chunks {
		ch := ledger.Chunk{ID: int64(c + 1)}
		for r := range rows {
			email := fmt.Sprintf("c%dr%d@example.com", c, r)
			ch.Rows = append(ch.Rows, ledger.Queued{Key: "email:" + email, Prior: ledger.Prior{Status: row.Queued,
				Email: email, Type: "INDIVIDUAL", CustomerIDSent: importer.CustomerIDFor(email), SourceFile: "q.csv", SourceLine: r + 2}})
		}
		w.chunks = append(w.chunks, ch)
	}
	return w
}

func (w *fakeWorker) Claim(context.Context) (ledger.Chunk, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost {
		return ledger.Chunk{}, false, errLost
	}
	if len(w.chunks) == 0 {
		return ledger.Chunk{}, false, nil
	}
	c := w.chunks[0]
	w.chunks = w.chunks[1:]
	return c, true, nil
}

// ClaimExpired finds none: no chunk of the fake has a lease to run out.
func (w *fakeWorker) ClaimExpired(context.Context) (ledger.Chunk, bool, time.Duration, error) {
	return ledger.Chunk{}, false, 0, w.Holds()
}

func (w *fakeWorker) Holds() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost {
		return errLost
	}
	return nil
}

// set writes a row's status. It does not check the lease: only Holds
// does, so that the tests see what the importer makes of Holds alone.
func (w *fakeWorker) set(key string, st row.Status) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status[key] = st
	return nil
}

func (w *fakeWorker) MarkInFlightCommitted(_ context.Context, sends []ledger.Send) (importer.Pending, error) {
	w.mu.Lock()
	w.marks += len(sends)
	w.mu.Unlock()
	for _, s := range sends {
		if err := w.set(s.Key, row.InFlight); err != nil {
			return nil, err
		}
	}
	return done{}, nil
}

func (w *fakeWorker) MarkInFlight(_ context.Context, s ledger.Send) error {
	return w.set(s.Key, row.InFlight)
}
func (w *fakeWorker) Record(_ context.Context, o ledger.Outcome) error { return w.set(o.Key, o.Status) }
func (w *fakeWorker) Release(_ context.Context, key string, p *ledger.Prior) error {
	return w.set(key, p.Status)
}
func (w *fakeWorker) RecordAssignsIDs(context.Context) error      { return nil }
func (w *fakeWorker) RecordKeepsIDs(context.Context) error        { return nil }
func (w *fakeWorker) Finish(context.Context, ledger.RunEnd) error { return nil }
func (w *fakeWorker) ChunkEnd(_ context.Context, chunk int64, finished bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended[chunk] = finished
	return nil
}

type done struct{}

func (done) Durable() error { return nil }

// countingSender creates every customer; after its lose-th request its
// worker loses the lease.
type countingSender struct {
	mu   sync.Mutex
	n    int
	lose int
	w    *fakeWorker
}

func (s *countingSender) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.n == s.lose {
		s.w.mu.Lock()
		s.w.lost = true
		s.w.mu.Unlock()
	}
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: true}, nil
}

func TestWork_SendsEveryClaimedRowAndEndsItsChunks(t *testing.T) {
	t.Parallel()
	w := newFakeWorker(3, 4)
	srv := &countingSender{w: w}
	im := importer.New(importer.Config{Concurrency: 2}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	idle := func(context.Context) (bool, error) { w.mu.Lock(); defer w.mu.Unlock(); return len(w.chunks) == 0, nil }
	sum, err := im.Work(t.Context(), w, importer.WorkConfig{Done: idle})
	if err != nil {
		t.Fatalf("Work() = %v", err)
	}
	if sum.Read != 12 || sum.Created != 12 || srv.n != 12 {
		t.Errorf("Work: %d rows taken, %d created, %d requests; want 12 each", sum.Read, sum.Created, srv.n)
	}
	for key, st := range w.status {
		if st != row.Created {
			t.Errorf("row %s: %s, want created", key, st)
		}
	}
	for c := int64(1); c <= 3; c++ {
		if finished, ok := w.ended[c]; !ok || !finished {
			t.Errorf("chunk %d: ended %v, finished %v; want done", c, ok, finished)
		}
	}
}

// TestWork_StopsBeforeTheNextRequestOnceTheLeaseIsLost: a worker that no
// longer holds its chunks sends nothing more, gives the chunk it worked
// back undone, and returns why.
func TestWork_StopsBeforeTheNextRequestOnceTheLeaseIsLost(t *testing.T) {
	t.Parallel()
	w := newFakeWorker(2, 5)
	srv := &countingSender{w: w, lose: 3}
	im := importer.New(importer.Config{Concurrency: 1}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	_, err := im.Work(t.Context(), w, importer.WorkConfig{})
	if !errors.Is(err, errLost) {
		t.Fatalf("Work() = %v, want the lost lease", err)
	}
	if srv.n != 3 {
		t.Errorf("requests = %d, want 3: none after the lease was lost", srv.n)
	}
	if finished := w.ended[1]; finished {
		t.Errorf("the chunk being worked was ended done; want it left undone")
	}
}

// inFlightSender checks, at each request, how many rows its worker holds
// marked in flight: the rows a worker killed then would leave in doubt.
type inFlightSender struct {
	countingSender
	most int
}

func (s *inFlightSender) CreateCustomer(ctx context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	s.w.mu.Lock()
	n := 0
	for _, st := range s.w.status {
		if st == row.InFlight {
			n++
		}
	}
	s.w.mu.Unlock()
	s.mu.Lock()
	s.most = max(s.most, n)
	s.mu.Unlock()
	return s.countingSender.CreateCustomer(ctx, req)
}

// TestWork_MarksRowsInFlightAsThePoolTakesThem: a worker marks a chunk's
// rows in flight Config.MarkAhead at a time as its pool takes them, so that
// killed it leaves its pool and a batch in doubt, not whole chunks of rows
// that never left.
func TestWork_MarksRowsInFlightAsThePoolTakesThem(t *testing.T) {
	t.Parallel()
	const concurrency, markAhead = 3, 3
	w := newFakeWorker(2, 100)
	srv := &inFlightSender{countingSender: countingSender{w: w}}
	im := importer.New(importer.Config{Concurrency: concurrency, MarkAhead: markAhead}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	idle := func(context.Context) (bool, error) { w.mu.Lock(); defer w.mu.Unlock(); return len(w.chunks) == 0, nil }
	sum, err := im.Work(t.Context(), w, importer.WorkConfig{Done: idle})
	if err != nil {
		t.Fatalf("Work() = %v", err)
	}
	if sum.Created != 200 {
		t.Errorf("Work: %d created, want 200", sum.Created)
	}
	if srv.most > concurrency+markAhead {
		t.Errorf("at a request, %d rows were marked in flight; want the pool and a batch at most (%d)", srv.most, concurrency+markAhead)
	}
}

// TestWork_RowsNotYetMarkedEndUnsentWhenTheLeaseIsLost: rows of a claimed
// chunk that the pool had not taken are neither sent nor marked once the
// lease is lost (a mark, even put back, is a write a lost lease may not
// make), every row left ends as it was, and the chunk is given back.
func TestWork_RowsNotYetMarkedEndUnsentWhenTheLeaseIsLost(t *testing.T) {
	t.Parallel()
	w := newFakeWorker(1, 50)
	srv := &countingSender{w: w, lose: 5}
	im := importer.New(importer.Config{Concurrency: 2, MarkAhead: 2}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	_, err := im.Work(t.Context(), w, importer.WorkConfig{})
	if !errors.Is(err, errLost) {
		t.Fatalf("Work() = %v, want the lost lease", err)
	}
	if w.marks > 5+2*2 {
		t.Errorf("%d rows were marked in flight by 5 requests; want those, the pool and a batch at most", w.marks)
	}
	for key, st := range w.status {
		if st != row.Queued && st != row.Created {
			t.Errorf("row %s: %s, want created or put back queued", key, st)
		}
	}
	if finished, ok := w.ended[1]; !ok || finished {
		t.Errorf("chunk 1: ended %v, finished %v; want given back", ok, finished)
	}
}

// claimWaitSender holds each request for a row of the first chunk until
// the second chunk is claimed, or until a while has passed (then it counts
// the request as late).
type claimWaitSender struct {
	countingSender
	late int
}

func (s *claimWaitSender) CreateCustomer(ctx context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	deadline := time.Now().Add(3 * time.Second)
	for strings.HasPrefix(req.Email, "c0") {
		s.w.mu.Lock()
		claimed := len(s.w.chunks) == 0
		s.w.mu.Unlock()
		if claimed {
			break
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			s.late++
			s.mu.Unlock()
			break
		}
		time.Sleep(time.Millisecond)
	}
	return s.countingSender.CreateCustomer(ctx, req)
}

// TestWork_ClaimsTheNextChunkWhileThePoolSendsTheLast: once fewer rows of
// its chunks wait than its pool holds, a worker claims the next chunk
// while the pool is still busy with the last rows, so that the claim's
// round trips and the next mark do not leave the pool empty.
func TestWork_ClaimsTheNextChunkWhileThePoolSendsTheLast(t *testing.T) {
	t.Parallel()
	w := newFakeWorker(2, 4) // a pool of 3 takes 3 rows of the first chunk: 1 waits
	srv := &claimWaitSender{countingSender: countingSender{w: w}}
	im := importer.New(importer.Config{Concurrency: 3, MarkAhead: 3}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	idle := func(context.Context) (bool, error) { w.mu.Lock(); defer w.mu.Unlock(); return len(w.chunks) == 0, nil }
	sum, err := im.Work(t.Context(), w, importer.WorkConfig{Done: idle})
	if err != nil {
		t.Fatalf("Work() = %v", err)
	}
	if sum.Created != 8 {
		t.Errorf("Work: %d created, want 8", sum.Created)
	}
	if srv.late > 0 {
		t.Errorf("%d requests of the first chunk waited 3 s for the second chunk's claim; want it claimed while they were out", srv.late)
	}
}
