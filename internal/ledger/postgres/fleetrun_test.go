package postgres

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// The ends of fleet chunks and runs: a chunk ended with rows still owed,
// a worker's lost lease beside a loader, and how a load's run ends.

// TestFleet_AChunkEndedDoneWithARowStillOwedIsGivenBack: a worker puts a
// row back (Release to the claim's prior: queued) and ends the chunk
// finished. Done, the chunk would leave the row queued and owed by no
// chunk: no claim would give it out again and a later import would skip
// it as another's. The store gives the chunk back instead: the next claim
// takes it.
func TestFleet_AChunkEndedDoneWithARowStillOwedIsGivenBack(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	run := load(t, l, targetA, "a.csv", 1, chunkOf("a.csv", 2, 1))
	w := startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, w)
	q := c.Rows[0]
	if err := w.MarkInFlight(t.Context(), sendFor(q.Key, "a.csv", q.SourceLine)); err != nil {
		t.Fatal(err)
	}
	prior := q.Prior
	if err := w.Release(t.Context(), q.Key, &prior); err != nil {
		t.Fatal(err)
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatalf("ChunkEnd(done) = %v", err)
	}
	_, left, err := l.FleetCounts(t.Context(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, claimed := claimChunk(t, startWorker(t, l, targetA, time.Minute))
	got := lookup(t, l, targetA, q.Key)[q.Key]
	if !claimed && left == 0 {
		t.Errorf("a row put back queued, its chunk ended done: no claim gets it, FleetCounts left = 0, Lookup = %s "+
			"(a later import skips it as queued by another); want the chunk refused done, or the row owed work", got.Status)
	}
}

// TestFleet_AWorkersLostLeaseLeavesTheLoaderBesideItWriting: import
// without --detach loads its file and works chunks with its own worker on
// one Ledger, so one writer. When that worker loses a lease (its write for
// a chunk another claimed since is refused with ErrLeaseLost), the worker
// stops; the loader's next Queue, and its Loaded, are committed.
func TestFleet_AWorkersLostLeaseLeavesTheLoaderBesideItWriting(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	other := openLedger(t, url, schema)
	load(t, other, targetA, "old.csv", 1, chunkOf("old.csv", 2, 1))

	l := openLedger(t, url, schema)
	loader := startRun(t, l, targetA, "new.csv")
	if err := loader.Queue(t.Context(), chunkOf("new.csv", 2, 2)); err != nil {
		t.Fatal(err)
	}
	own := startWorker(t, l, targetA, time.Second) // the import's own pool
	c, ok := claimChunk(t, own)
	if !ok {
		t.Fatal("no chunk")
	}
	q := c.Rows[0]
	if err := own.MarkInFlight(t.Context(), sendFor(q.Key, q.SourceFile, q.SourceLine)); err != nil {
		t.Fatal(err)
	}
	pause(own) // a GC pause, a slow machine
	time.Sleep(1500 * time.Millisecond)
	if _, ok := claimChunk(t, startWorker(t, other, targetA, time.Minute)); !ok {
		t.Fatal("the expired chunk could not be claimed")
	}
	// The paused worker's answer comes, past its Holds check.
	op := writeOp{kind: opRecord, targetID: own.targetID, runID: own.held[c.ID].run, chunk: c.ID, fence: own.held[c.ID].fence,
		outcome: Outcome{Key: q.Key, Status: Created}}
	if err := l.w.submit(t.Context(), op, true); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the old holder's write = %v, want ErrLeaseLost", err)
	}
	// The loader goes on reading its file.
	if err := loader.Queue(t.Context(), chunkOf("new.csv", 4, 2)); err != nil {
		t.Errorf("the loader's Queue after its own worker lost a lease = %v; want nil: the loader holds the target's lock", err)
	}
	if err := loader.Loaded(t.Context(), RunEnd{Outcome: "completed", SourceFile: "new.csv", Counts: row.Counts{Read: 4}}); err != nil {
		t.Errorf("the loader's Loaded after its own worker lost a lease = %v; want nil", err)
	}
}

// TestFleet_AnInterruptedLoadEndsInterrupted: an import interrupted
// (SIGINT) while loading records Loaded with the outcome interrupted; once
// workers have done its chunks its run ends interrupted, not completed:
// part of its file was never read.
func TestFleet_AnInterruptedLoadEndsInterrupted(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "a.csv")
	if err := r.Queue(t.Context(), chunkOf("a.csv", 2, 1)); err != nil {
		t.Fatal(err)
	}
	end := RunEnd{Outcome: "interrupted", SourceFile: "a.csv", Counts: row.Counts{Read: 1}}
	if err := r.Loaded(t.Context(), end); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, w)
	q := c.Rows[0]
	if err := w.MarkInFlight(t.Context(), sendFor(q.Key, "a.csv", q.SourceLine)); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(t.Context(), Outcome{Key: q.Key, Status: Created}); err != nil {
		t.Fatal(err)
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatal(err)
	}
	if outcome, ended, err := l.RunEnded(t.Context(), r.ID); err != nil || outcome != "interrupted" {
		t.Errorf("RunEnded() of a load interrupted, its chunks done = %s, %v, %v; want interrupted", outcome, ended, err)
	}
}

// TestFleet_IdleIsFalseWhileAnImportIsLoading: worker --exit-when-idle
// asks Idle(0) before each claim and ends when it says true. While an
// import is loading (its run running, not loaded, its lock held), more
// chunks may come, though the workers have caught up with those queued so
// far: Idle says false.
func TestFleet_IdleIsFalseWhileAnImportIsLoading(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	loader := startRun(t, l, targetA, "big.csv")
	if err := loader.Queue(t.Context(), chunkOf("big.csv", 2, 1)); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, w)
	q := c.Rows[0]
	if err := w.MarkInFlight(t.Context(), sendFor(q.Key, "big.csv", q.SourceLine)); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(t.Context(), Outcome{Key: q.Key, Status: Created}); err != nil {
		t.Fatal(err)
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatal(err)
	}
	// The loader is still reading big.csv: its next chunk comes.
	idle, err := w.Idle(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if idle {
		t.Errorf("Idle(0) = true while import %d is loading (running, not loaded); want false: --exit-when-idle workers exit before its next chunks", loader.ID)
	}
}

// TestFleet_ALoadWhoseLoaderDiedEndsCrashedWithItsLastChunk: a fleet
// import killed while loading never records Loaded; its lock goes with its
// connection. Workers send what it queued; the end of its last chunk ends
// its run crashed, and Live no longer lists it.
func TestFleet_ALoadWhoseLoaderDiedEndsCrashedWithItsLastChunk(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	loader := startRun(t, l, targetA, "a.csv")
	if err := loader.Queue(t.Context(), chunkOf("a.csv", 2, 1)); err != nil {
		t.Fatal(err)
	}
	loader.unlock() // kill -9: the connection, and the lock, are gone
	w := startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, w)
	q := c.Rows[0]
	if err := w.MarkInFlight(t.Context(), sendFor(q.Key, "a.csv", q.SourceLine)); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(t.Context(), Outcome{Key: q.Key, Status: Created}); err != nil {
		t.Fatal(err)
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatal(err)
	}
	live, _, err := l.Live(t.Context(), targetA)
	if err != nil {
		t.Fatal(err)
	}
	for _, li := range live {
		if li.RunID == loader.ID {
			t.Errorf("Live() lists import %d, whose loader died and whose chunks are all done, as live (loaded %v, %d left); want it ended crashed",
				li.RunID, li.Loaded, li.Left)
		}
	}
}

// TestFleet_AChunkGivenBackIsNotLeasedAgainByAHeartbeat: a heartbeat
// reads the chunks held, then extends their leases in a statement of its
// own. A chunk given back (ChunkEnd, not finished: lease_until = NULL,
// for another to claim at once) between the two keeps no lease (the
// heartbeat extends only a lease set): the next claim takes it at once.
func TestFleet_AChunkGivenBackIsNotLeasedAgainByAHeartbeat(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	load(t, l, targetA, "a.csv", 1, chunkOf("a.csv", 2, 1))
	a, b := startWorker(t, l, targetA, time.Minute), startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, a)
	// The heartbeat's first statement (the workers row) waits on a lock,
	// as on a busy database, after it has read the chunks held.
	tx, err := l.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM workers WHERE id = $1 FOR UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}
	beat := make(chan error, 1)
	go func() { beat <- a.beat(t.Context()) }()
	time.Sleep(300 * time.Millisecond) // the heartbeat has read a.held
	if err := a.ChunkEnd(t.Context(), c.ID, false); err != nil {
		t.Fatalf("ChunkEnd(given back) = %v", err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-beat; err != nil {
		t.Logf("beat() = %v", err)
	}
	if c2, ok := claimChunk(t, b); !ok || c2.ID != c.ID {
		var until *time.Time
		l.pool.QueryRow(t.Context(), `SELECT lease_until FROM chunks WHERE id = $1`, c.ID).Scan(&until)
		t.Errorf("claim of the chunk just given back = %v; want it at once (its lease_until is %v, set by the giver's heartbeat)", ok, until)
	}
}

// TestFleet_TheLastTwoChunksEndedAtOnceEndTheRun: completeRunSQL ends a
// loaded run when none of its chunks is open, each ChunkEnd asking in its
// own commit. Two workers that end a run's last two chunks at the same
// moment would each see the other's chunk still open (READ COMMITTED: the
// other commit not yet visible) and neither end the run, which would stay
// running for good; a commit that ends chunks done locks their runs
// first, so the later one sees the earlier's chunk done and ends the run.
func TestFleet_TheLastTwoChunksEndedAtOnceEndTheRun(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	la, lb := openLedger(t, url, schema), openLedger(t, url, schema)
	stuck := 0
	const trials = 60
	for i := range trials {
		file := fmt.Sprintf("t%d.csv", i)
		run := load(t, la, targetA, file, 2, chunkOf(file, 2, 1), chunkOf(file, 3, 1))
		a, b := startWorker(t, la, targetA, time.Minute), startWorker(t, lb, targetA, time.Minute)
		var chunks [2]int64
		for j, w := range []*Worker{a, b} {
			c, ok := claimChunk(t, w)
			if !ok {
				t.Fatal("no chunk")
			}
			q := c.Rows[0]
			if err := w.MarkInFlight(t.Context(), sendFor(q.Key, file, q.SourceLine)); err != nil {
				t.Fatal(err)
			}
			if err := w.Record(t.Context(), Outcome{Key: q.Key, Status: Created}); err != nil {
				t.Fatal(err)
			}
			if err := w.l.w.flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			chunks[j] = c.ID
		}
		start := make(chan struct{})
		errs := make(chan error, 2)
		for j, w := range []*Worker{a, b} {
			go func() {
				<-start
				errs <- w.ChunkEnd(t.Context(), chunks[j], true)
			}()
		}
		close(start)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if outcome, ended, err := la.RunEnded(t.Context(), run.ID); err != nil || !ended {
			stuck++
			t.Logf("trial %d: run %d %s, ended %v, %v", i, run.ID, outcome, ended, err)
		}
		pause(a)
		pause(b)
	}
	if stuck > 0 {
		t.Errorf("%d of %d loaded runs whose last two chunks two workers ended at once never ended", stuck, trials)
	}
}

// TestFleet_ALostLeaseRefusesOnlyTheWritesForItsChunk: a commit refused
// because one chunk of it was claimed by another is committed again in
// parts: the outcome for a chunk still held, in the same batch, is kept.
func TestFleet_ALostLeaseRefusesOnlyTheWritesForItsChunk(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	other := openLedger(t, url, schema)
	load(t, other, targetA, "a.csv", 2, chunkOf("a.csv", 2, 1), chunkOf("a.csv", 3, 1))
	l := openLedger(t, url, schema)
	lost, held := startWorker(t, l, targetA, time.Second), startWorker(t, l, targetA, time.Minute)
	var rows [2]ledger.Queued
	for i, w := range []*Worker{lost, held} {
		c, ok := claimChunk(t, w)
		if !ok {
			t.Fatal("no chunk")
		}
		rows[i] = c.Rows[0]
		if err := w.MarkInFlight(t.Context(), sendFor(rows[i].Key, "a.csv", rows[i].SourceLine)); err != nil {
			t.Fatal(err)
		}
	}
	pause(lost)
	time.Sleep(1500 * time.Millisecond)
	c, ok := claimChunk(t, startWorker(t, other, targetA, time.Minute))
	if !ok || c.Rows[0].Key != rows[0].Key {
		t.Fatalf("claim of the expired chunk = %v, %+v", ok, c)
	}
	lc := lost.keys[rows[0].Key]
	op := writeOp{kind: opRecord, targetID: lost.targetID, runID: lc.run, chunk: lc.chunk, fence: lc.fence,
		outcome: Outcome{Key: rows[0].Key, Status: Created}}
	if err := l.w.submit(t.Context(), op, false); err != nil {
		t.Fatal(err)
	}
	if err := held.Record(t.Context(), Outcome{Key: rows[1].Key, Status: Created}); err != nil {
		t.Fatal(err)
	}
	l.w.flush(t.Context())
	got := lookup(t, l, targetA, rows[0].Key, rows[1].Key)
	if got[rows[0].Key].Status == row.Created || got[rows[1].Key].Status != row.Created {
		t.Errorf("after a batch with writes for a chunk lost and one held: %s (lost), %s (held); want the lost one's refused, the held one's created",
			got[rows[0].Key].Status, got[rows[1].Key].Status)
	}
	if err := held.Holds(); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Holds() of a worker on the ledger = %v, want ErrLeaseLost: the ledger's workers stop", err)
	}
}

// TestFleet_LiveLeavesOutALoadWhoseLoaderDiedWithNothingOpen: a loader
// whose chunks were all done is live while it loads, and no longer once
// it died (its lock gone), though no chunk end came after to end its run.
func TestFleet_LiveLeavesOutALoadWhoseLoaderDiedWithNothingOpen(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	loader := startRun(t, l, targetA, "a.csv")
	if err := loader.Queue(t.Context(), chunkOf("a.csv", 2, 1)); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, w)
	q := c.Rows[0]
	if err := w.MarkInFlight(t.Context(), sendFor(q.Key, "a.csv", q.SourceLine)); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(t.Context(), Outcome{Key: q.Key, Status: Created}); err != nil {
		t.Fatal(err)
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		live, _, err := l.Live(t.Context(), targetA)
		if err != nil {
			t.Fatal(err)
		}
		for _, li := range live {
			if li.RunID == loader.ID {
				return true
			}
		}
		return false
	}
	if !listed() {
		t.Errorf("Live() leaves out import %d while it loads", loader.ID)
	}
	loader.unlock() // kill -9
	if listed() {
		t.Errorf("Live() lists import %d, whose loader died with none of its chunks open", loader.ID)
	}
}
