package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// TestFleet_AStoppedResendInDoubtRunsRowInDoubtStaysInDoubt: a row in
// doubt at a target that assigns its own ids (its customer may exist) is
// queued by an import run with --resend-in-doubt (Queue writes it
// 'queued'), and that import is stopped for its --max-errors before the
// row is sent. The row was never sent by the stopped run, but it may
// still exist from the earlier one: a lookup must read it in_doubt, so
// that a later import without --resend-in-doubt holds it rather than
// sending it (a second customer).
func TestFleet_AStoppedResendInDoubtRunsRowInDoubtStaysInDoubt(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	const key = "x.csv-2"
	// An earlier run: the row's answer was lost, and the target assigns ids.
	r0 := startRun(t, l, targetA, "x.csv")
	mark(t, r0, sendFor(key, "x.csv", 2))
	record(t, r0, Outcome{Key: key, Status: InDoubt, Message: "timeout"})
	if err := r0.RecordAssignsIDs(t.Context()); err != nil {
		t.Fatal(err)
	}
	finish(t, r0, RunEnd{Outcome: "completed"})
	if got := lookup(t, l, targetA, key)[key].Status; got != InDoubt {
		t.Fatalf("before: %s, want in_doubt", got)
	}

	// The operator re-imports with --resend-in-doubt --max-errors 1.
	r1, err := l.StartRun(t.Context(), RunInfo{Target: targetA, SourceFile: "x.csv",
		Options: map[string]any{"resendInDoubt": true, "maxErrors": 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r1.unlock)
	if err := r1.Queue(t.Context(), []Send{sendFor(key, "x.csv", 2), sendFor("x.csv-3", "x.csv", 3)}); err != nil {
		t.Fatal(err)
	}
	if err := r1.Loaded(t.Context(), RunEnd{Outcome: "completed", SourceFile: "x.csv"}); err != nil {
		t.Fatal(err)
	}
	// Another row of the run reached the limit (elsewhere): the fleet stops
	// it before any worker sent this row.
	if err := l.StopRun(t.Context(), r1.ID, "1 rows rejected, failed or in doubt (--max-errors 1)"); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, l, targetA, 5*time.Second)
	if _, ok := claimChunk(t, w); ok { // no chunk: ends the stopped run
		t.Fatal("a stopped run's chunk was claimed")
	}
	if outcome, ended, _ := l.RunEnded(t.Context(), r1.ID); !ended || outcome != "aborted" {
		t.Fatalf("stopped run: ended %v %q, want aborted", ended, outcome)
	}
	if got := lookup(t, l, targetA, key)[key].Status; got != InDoubt {
		t.Errorf("a row in doubt, queued by a --resend-in-doubt run stopped before sending it, reads %q; want in_doubt "+
			"(read as failed, a later import without --resend-in-doubt would send it to a target that assigns its own ids)", got)
	}
}

// TestFleet_AChunkGivenBackWithARowInFlightEnds: a worker gives a chunk
// back (ChunkEnd not finished) while a row of it is still marked in
// flight: its Release failed (Holds refused it once the worker's own clock
// passed its lease), or, in Work's startSome, MarkInFlightCommitted
// committed the marks of one chunk and failed on the next, and the rows
// left unmarked were dropped. The next claim of the chunk, which has no
// lease, takes the row in flight to in_doubt and returns it, so that the
// chunk is worked to its end and Idle says so.
func TestFleet_AChunkGivenBackWithARowInFlightEnds(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	load(t, l, targetA, "a.csv", 2, chunkOf("a.csv", 2, 2))
	a := startWorker(t, l, targetA, 5*time.Second)
	c, ok := claimChunk(t, a)
	if !ok {
		t.Fatal("no chunk")
	}
	if err := a.MarkInFlight(t.Context(), sendFor(c.Rows[0].Key, "a.csv", c.Rows[0].SourceLine)); err != nil {
		t.Fatal(err)
	}
	// The row's request may have left; the worker gives the chunk back
	// without having released the row.
	if err := a.ChunkEnd(t.Context(), c.ID, false); err != nil {
		t.Fatal(err)
	}
	b := startWorker(t, l, targetA, 5*time.Second)
	for i := range 3 {
		c2, ok := claimChunk(t, b)
		if !ok {
			break
		}
		var keys []string
		for _, r := range c2.Rows {
			keys = append(keys, r.Key)
			if err := b.MarkInFlight(t.Context(), sendFor(r.Key, "a.csv", r.SourceLine)); err != nil {
				t.Fatal(err)
			}
			if err := b.Record(t.Context(), Outcome{Key: r.Key, Status: Created}); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("claim %d: chunk %d, rows %v", i, c2.ID, keys)
		if err := b.ChunkEnd(t.Context(), c2.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	if idle, err := b.Idle(t.Context(), 0); err != nil || !idle {
		t.Errorf("after three claims: Idle = %v, %v; status %v: the row left in flight is never taken to in_doubt and sent, and its chunk never ends",
			idle, err, storedStatus(t, l, c.Rows[0].Key))
	}
}

// pausedSender creates every customer after d.
type pausedSender struct{ d time.Duration }

func (s pausedSender) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	time.Sleep(s.d)
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: true}, nil
}

// TestFleet_AWorkerThatOutlivesItsLeaseLeavesNoChunkStuck: the only
// worker of a target is paused past its lease (no heartbeat: SIGSTOP, a VM
// migration, a GC) while a request is out. When it resumes, the answer's
// Record is refused by Holds, so the row stays in_flight; its other rows
// are dropped unmarked, and end() gives the chunk back (ChunkEnd, which
// does not ask Holds, commits: nobody else claimed it). The next worker
// claims the chunk, takes the row in flight to in_doubt and works it, and
// a worker --exit-when-idle ends.
func TestFleet_AWorkerThatOutlivesItsLeaseLeavesNoChunkStuck(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	load(t, l, targetA, "a.csv", 3, chunkOf("a.csv", 2, 3))
	a := startWorker(t, l, targetA, time.Second)
	pause(a) // its heartbeat stops: its lease runs out during the first request
	ima := importer.New(importer.Config{Concurrency: 1}, pausedSender{1500 * time.Millisecond}, freePacer{}, storeOf{l}, targetA)
	_, err := ima.Work(t.Context(), workerOf{a}, importer.WorkConfig{Poll: 50 * time.Millisecond})
	t.Logf("first worker: %v; rows %v", err, storedStatus(t, l, "a.csv-2", "a.csv-3", "a.csv-4"))

	b := startWorker(t, l, targetA, time.Second)
	imb := importer.New(importer.Config{Concurrency: 1}, pausedSender{0}, freePacer{}, storeOf{l}, targetA)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	idle := func(ctx context.Context) (bool, error) { return b.Idle(ctx, 0) }
	_, err = imb.Work(ctx, workerOf{b}, importer.WorkConfig{Done: idle, Poll: 50 * time.Millisecond})
	if ctx.Err() != nil {
		t.Errorf("the next worker --exit-when-idle had not ended after 10s (Work = %v); rows %v: the row left in flight "+
			"in a chunk given back is never sent again nor taken to in_doubt", err, storedStatus(t, l, "a.csv-2", "a.csv-3", "a.csv-4"))
	}
}
