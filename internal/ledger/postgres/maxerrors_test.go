package postgres

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// rejectingSender rejects (400) the emails in reject and creates the
// others, each after d, counting the requests of each file's rows.
type rejectingSender struct {
	d      time.Duration
	reject map[string]bool
	sent   sync.Map // source file prefix -> *atomic.Int64
}

func (s *rejectingSender) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	time.Sleep(s.d)
	n, _ := s.sent.LoadOrStore(req.Email[:5], new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	if s.reject[req.Email] {
		return ripio.Customer{}, &ripio.APIError{Status: http.StatusBadRequest, Code: 20000, Type: "ValidationError", Message: "email: Enter a valid email address."}
	}
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: true}, nil
}

func (s *rejectingSender) count(prefix string) int64 {
	n, ok := s.sent.Load(prefix)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// TestWork_AFleetImportStopsAtItsMaxErrorsWhicheverWorkersSendIt: an
// import of 100 rows with maxErrors 5 in its options, whose every third row
// the server rejects, is worked by two workers, beside a later import of 20
// rows with no limit. The workers together stop the first import once its
// rows reach the limit: far fewer than its 100 rows are sent, the rest stay
// queued (a lookup reads them as not sent, so a later import of the file
// sends them), the import ends aborted with the reason recorded, and the
// workers go on to send every row of the other import and end without an
// error.
func TestWork_AFleetImportStopsAtItsMaxErrorsWhicheverWorkersSendIt(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	limited, err := l.StartRun(t.Context(), RunInfo{Target: targetA, SourceFile: "bad.csv", Options: map[string]any{"maxErrors": 5}})
	if err != nil {
		t.Fatal(err)
	}
	s := &rejectingSender{d: 5 * time.Millisecond, reject: map[string]bool{}}
	var keys []string
	for c := range 10 {
		rows := chunkOf("bad.csv", 2+10*c, 10)
		for _, r := range rows {
			keys = append(keys, r.Key)
			if r.SourceLine%3 == 0 {
				s.reject[r.Email] = true
			}
		}
		if err := limited.Queue(t.Context(), rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := limited.Loaded(t.Context(), RunEnd{Outcome: "completed", SourceFile: "bad.csv", Counts: row.Counts{Read: 100}}); err != nil {
		t.Fatal(err)
	}
	other := load(t, l, targetA, "good.csv", 20, chunkOf("good.csv", 2, 10), chunkOf("good.csv", 12, 10))

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var g errgroup.Group
	for range 2 {
		w := startWorker(t, l, targetA, 5*time.Second)
		im := importer.New(importer.Config{Concurrency: 2}, s, freePacer{}, storeOf{l}, targetA)
		idle := func(ctx context.Context) (bool, error) { return w.Idle(ctx, 0) }
		g.Go(func() error {
			_, err := im.Work(ctx, workerOf{w}, importer.WorkConfig{Done: idle, Poll: 50 * time.Millisecond})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("Work() = %v, want nil: another import's limit is no reason to stop", err)
	}

	if sent := s.count("bad.c"); sent >= 50 {
		t.Errorf("%d of the limited import's 100 rows were sent; want the limit (5 errors, ~15 rows) and what was in flight, under 50", sent)
	}
	if sent := s.count("good."); sent != 20 {
		t.Errorf("%d of the other import's 20 rows were sent, want 20", sent)
	}
	outcome, ended, err := l.RunEnded(t.Context(), limited.ID)
	if err != nil {
		t.Fatal(err)
	}
	lim, err := l.RunLimit(t.Context(), limited.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !ended || outcome != "aborted" || lim.Stopped == "" {
		t.Errorf("limited import: ended %v, outcome %q, stopped by %q; want ended aborted, with the reason", ended, outcome, lim.Stopped)
	}
	if outcome, _, _ := l.RunEnded(t.Context(), other.ID); outcome != "completed" {
		t.Errorf("the other import ended %q, want completed", outcome)
	}
	ended2, left, err := l.FleetCounts(t.Context(), limited.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("limited import: %d rows sent, %d rejected, %d left", s.count("bad.c"), ended2[row.Rejected], left)
	if ended2[row.Rejected] < 5 || left < 50 {
		t.Errorf("limited import's rows: %d rejected, %d left; want 5 or more rejected and the unsent rest left", ended2[row.Rejected], left)
	}
	notSent := 0
	for _, p := range lookup(t, l, targetA, keys...) {
		if p.Status == row.Failed {
			notSent++
		}
	}
	if int64(notSent) != int64(left) {
		t.Errorf("a lookup reads %d of the limited import's rows as not sent (failed), want the %d left", notSent, left)
	}
}
