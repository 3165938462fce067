package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// loadChunks starts a run of file on targetA and queues one chunk of n
// rows for each n of sizes; the run is loaded when loaded is set.
func loadChunks(t *testing.T, l *Ledger, file string, loaded bool, sizes ...int) *Run {
	t.Helper()
	r := startRun(t, l, targetA, file)
	line, read := 2, 0
	for _, n := range sizes {
		var sends []Send
		for range n {
			sends = append(sends, sendFor(fmt.Sprintf("%s-%d", file, line), file, line))
			line++
		}
		read += n
		if err := r.Queue(t.Context(), sends); err != nil {
			t.Fatalf("Queue(%d rows) = %v", n, err)
		}
	}
	if loaded {
		end := RunEnd{Outcome: "completed", SourceFile: file, Counts: row.Counts{Read: int64(read)}}
		if err := r.Loaded(t.Context(), end); err != nil {
			t.Fatalf("Loaded() = %v", err)
		}
	}
	return r
}

func startWorker(t *testing.T, l *Ledger, lease time.Duration) *Worker {
	t.Helper()
	w, err := l.StartWorker(t.Context(), targetA, WorkerOptions{Lease: lease})
	if err != nil {
		t.Fatalf("StartWorker() = %v", err)
	}
	t.Cleanup(func() { w.stopOnce.Do(func() { close(w.stop) }); <-w.beatDone })
	return w
}

func claimChunk(t *testing.T, w *Worker) (ledger.Chunk, bool) {
	t.Helper()
	c, ok, err := w.Claim(t.Context())
	if err != nil {
		t.Fatalf("Claim() = %v", err)
	}
	return c, ok
}

// pause stops w's heartbeat, as a process stopped by SIGSTOP would.
func pause(w *Worker) {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.beatDone
}

func TestFleet_ClaimsEachChunkOnce(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	loadChunks(t, l, "a.csv", true, 3, 2)
	if got := lookup(t, l, targetA, "a.csv-2")["a.csv-2"].Status; got != row.Queued {
		t.Errorf("Lookup of a queued row: status %s, want queued", got)
	}
	a, b := startWorker(t, l, time.Minute), startWorker(t, l, time.Minute)
	c1, ok1 := claimChunk(t, a)
	c2, ok2 := claimChunk(t, b)
	_, ok3 := claimChunk(t, a)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("three claims of two chunks: ok %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if c1.ID == c2.ID || len(c1.Rows)+len(c2.Rows) != 5 {
		t.Errorf("claims = chunk %d (%d rows), chunk %d (%d rows); want two chunks, 5 rows", c1.ID, len(c1.Rows), c2.ID, len(c2.Rows))
	}
}

func TestFleet_HeartbeatKeepsTheLease(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	loadChunks(t, l, "a.csv", true, 2)
	a, b := startWorker(t, l, 900*time.Millisecond), startWorker(t, l, 900*time.Millisecond)
	claimChunk(t, a)
	time.Sleep(2 * time.Second)
	if _, ok := claimChunk(t, b); ok {
		t.Errorf("a chunk whose holder beats was claimed after twice its lease")
	}
	if err := a.Holds(); err != nil {
		t.Errorf("Holds() of a beating worker = %v, want nil", err)
	}
}

// TestFleet_ExpiredLeaseFencesTheOldHolder: a holder that stops beating
// loses its chunk once the lease runs out; the next claim makes its row in
// flight in_doubt, naming the lease, and every later write of the old
// holder for the chunk is refused and changes nothing.
func TestFleet_ExpiredLeaseFencesTheOldHolder(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	l := openLedger(t, url, schema)
	loadChunks(t, l, "a.csv", true, 2)
	// a's ledger fails for good at the refused write: a worker stops there.
	la, err := Open(t.Context(), url, Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { la.Close() })
	a, b := startWorker(t, la, time.Second), startWorker(t, l, time.Second)
	c, _ := claimChunk(t, a)
	sent := c.Rows[0]
	if err := a.MarkInFlight(t.Context(), sendFor(sent.Key, "a.csv", sent.SourceLine)); err != nil {
		t.Fatalf("MarkInFlight() = %v", err)
	}
	pause(a)
	time.Sleep(1500 * time.Millisecond)
	if err := a.Holds(); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Holds() past the lease = %v, want ErrLeaseLost", err)
	}
	c2, ok := claimChunk(t, b)
	if !ok || c2.ID != c.ID || len(c2.Rows) != 2 {
		t.Fatalf("claim after the lease ran out = chunk %d (%d rows), %v; want chunk %d, both rows", c2.ID, len(c2.Rows), ok, c.ID)
	}
	for _, q := range c2.Rows {
		if q.Key == sent.Key && (q.Status != InDoubt || q.Message == "" || !strings.Contains(q.Message, "lease")) {
			t.Errorf("row in flight of the expired chunk = %s %q, want in_doubt naming the lease", q.Status, q.Message)
		}
	}
	// A write past Holds, as a paused process's write already queued: the
	// fence refuses it whole.
	op := writeOp{kind: opRecord, targetID: a.targetID, runID: c2.Rows[0].LastRun, chunk: c.ID, fence: a.held[c.ID].fence,
		outcome: Outcome{Key: sent.Key, Status: Created}}
	if err := a.l.w.submit(t.Context(), op, true); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("a fenced write for a chunk claimed since = %v, want ErrLeaseLost", err)
	}
	if got := lookup(t, l, targetA, sent.Key)[sent.Key]; got.Message == "" || !strings.Contains(got.Message, "lease") {
		t.Errorf("row after the refused write = %+v, want it in doubt as the claim left it", got)
	}
}

// TestFleet_StartRunSparesLiveLeases: an import starting on the target
// leaves the rows in flight of a worker whose lease holds, and makes in
// doubt those of a lease that ran out.
func TestFleet_StartRunSparesLiveLeases(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	loadChunks(t, l, "a.csv", true, 1, 1)
	live, dead := startWorker(t, l, time.Minute), startWorker(t, l, time.Second)
	cl, _ := claimChunk(t, live)
	cd, _ := claimChunk(t, dead)
	for _, p := range []struct {
		w *Worker
		q ledger.Queued
	}{{live, cl.Rows[0]}, {dead, cd.Rows[0]}} {
		if err := p.w.MarkInFlight(t.Context(), sendFor(p.q.Key, "a.csv", p.q.SourceLine)); err != nil {
			t.Fatal(err)
		}
	}
	pause(dead)
	time.Sleep(1500 * time.Millisecond)
	r := startRun(t, l, targetA, "b.csv")
	if r.Recovered != 1 {
		t.Errorf("StartRun recovered %d rows, want 1 (the expired lease's)", r.Recovered)
	}
	got := l.mustLookupStatus(t, cl.Rows[0].Key, cd.Rows[0].Key)
	if got[0] != InFlight || got[1] != InDoubt {
		t.Errorf("after StartRun: live worker's row %s, dead worker's %s; want in_flight, in_doubt", got[0], got[1])
	}
}

// mustLookupStatus reads the stored status of keys, as claims see it.
func (l *Ledger) mustLookupStatus(t *testing.T, keys ...string) []Status {
	t.Helper()
	var out []Status
	for _, k := range keys {
		var s Status
		if err := l.pool.QueryRow(t.Context(), `SELECT status FROM rows WHERE row_key = $1`, k).Scan(&s); err != nil {
			t.Fatalf("status of %s: %v", k, err)
		}
		out = append(out, s)
	}
	return out
}

// TestFleet_LastChunkEndsTheLoadedRun: given back, a chunk is claimable
// at once; done, with every other, it ends its run completed, the rows
// counted by how they ended.
func TestFleet_LastChunkEndsTheLoadedRun(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := loadChunks(t, l, "a.csv", true, 2)
	a, b := startWorker(t, l, time.Minute), startWorker(t, l, time.Minute)
	c, _ := claimChunk(t, a)
	if err := a.ChunkEnd(t.Context(), c.ID, false); err != nil {
		t.Fatalf("ChunkEnd(given back) = %v", err)
	}
	c, ok := claimChunk(t, b)
	if !ok {
		t.Fatal("a chunk given back could not be claimed")
	}
	for i, q := range c.Rows {
		if err := b.MarkInFlight(t.Context(), sendFor(q.Key, "a.csv", q.SourceLine)); err != nil {
			t.Fatal(err)
		}
		st := []Status{Created, Failed}[i]
		if err := b.Record(t.Context(), Outcome{Key: q.Key, Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	if outcome, ended, _ := l.RunEnded(t.Context(), r.ID); ended {
		t.Fatalf("run ended (%s) with a chunk open", outcome)
	}
	if err := b.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatalf("ChunkEnd(done) = %v", err)
	}
	if outcome, ended, err := l.RunEnded(t.Context(), r.ID); err != nil || !ended || outcome != "completed" {
		t.Fatalf("RunEnded() = %s, %v, %v; want completed", outcome, ended, err)
	}
	runs := report(t, l, targetA).Runs
	if runs[0].Counts["created"] != 1 || runs[0].Counts["failed"] != 1 || runs[0].Counts["not_started"] != 0 {
		t.Errorf("run counts = %v, want 1 created, 1 failed, 0 not started", runs[0].Counts)
	}
}
