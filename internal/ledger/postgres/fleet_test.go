package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ledger/storetest"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// TestLedger_FleetConformance runs the fleet suite against the PostgreSQL
// store, each test in a schema of its own.
func TestLedger_FleetConformance(t *testing.T) {
	t.Parallel()
	testURL(t)
	storetest.TestFleet(t, storetest.FleetHarness[*Worker]{
		Open: func(t *testing.T) any { return newLedger(t) },
		Load: func(t *testing.T, s any, target, file string, read int, chunks ...[]ledger.Send) int64 {
			return load(t, s.(*Ledger), target, file, read, chunks...).ID
		},
		StartWorker: func(t *testing.T, s any, target string, lease time.Duration) *Worker {
			return startWorker(t, s.(*Ledger), target, lease)
		},
		Pause: pause,
		Lookup: func(t *testing.T, s any, target string, keys ...string) map[string]ledger.Prior {
			return lookup(t, s.(*Ledger), target, keys...)
		},
		RunEnded: func(t *testing.T, s any, run int64) (string, bool) {
			outcome, ended, err := s.(*Ledger).RunEnded(t.Context(), run)
			if err != nil {
				t.Fatal(err)
			}
			return outcome, ended
		},
	})
}

// load starts a run of file on target, queues each of chunks and records
// the run loaded, read rows read.
func load(t *testing.T, l *Ledger, target, file string, read int, chunks ...[]Send) *Run {
	t.Helper()
	r := startRun(t, l, target, file)
	for _, c := range chunks {
		if err := r.Queue(t.Context(), c); err != nil {
			t.Fatalf("Queue(%d rows) = %v", len(c), err)
		}
	}
	end := RunEnd{Outcome: "completed", SourceFile: file, Counts: row.Counts{Read: int64(read)}}
	if err := r.Loaded(t.Context(), end); err != nil {
		t.Fatalf("Loaded() = %v", err)
	}
	return r
}

// chunkOf is n sends of file from line from.
func chunkOf(file string, from, n int) []Send {
	var out []Send
	for i := range n {
		out = append(out, sendFor(fmt.Sprintf("%s-%d", file, from+i), file, from+i))
	}
	return out
}

func startWorker(t *testing.T, l *Ledger, target string, lease time.Duration) *Worker {
	t.Helper()
	w, err := l.StartWorker(t.Context(), target, WorkerOptions{Lease: lease})
	if err != nil {
		t.Fatalf("StartWorker() = %v", err)
	}
	t.Cleanup(func() { pause(w) })
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

// TestFleet_TheFenceRefusesAnOldHoldersWrite: a write the old holder of a
// chunk had queued before another claimed the chunk (past Holds, as a
// paused process's) is refused whole and changes nothing; the old holder
// stops (Holds), while its ledger's writer goes on for a loader beside it.
func TestFleet_TheFenceRefusesAnOldHoldersWrite(t *testing.T) {
	t.Parallel()
	url := testURL(t)
	schema := newSchema(t, url)
	l := openLedger(t, url, schema)
	load(t, l, targetA, "a.csv", 2, chunkOf("a.csv", 2, 2))
	la, err := Open(t.Context(), url, Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { la.Close() })
	a, b := startWorker(t, la, targetA, time.Second), startWorker(t, l, targetA, time.Second)
	c, _ := claimChunk(t, a)
	sent := c.Rows[0]
	if err := a.MarkInFlight(t.Context(), sendFor(sent.Key, "a.csv", sent.SourceLine)); err != nil {
		t.Fatalf("MarkInFlight() = %v", err)
	}
	pause(a)
	time.Sleep(1500 * time.Millisecond)
	if _, ok := claimChunk(t, b); !ok {
		t.Fatal("the expired chunk could not be claimed")
	}
	op := writeOp{kind: opRecord, targetID: a.targetID, runID: a.held[c.ID].run, chunk: c.ID, fence: a.held[c.ID].fence,
		outcome: Outcome{Key: sent.Key, Status: Created}}
	if err := la.w.submit(t.Context(), op, true); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("a fenced write for a chunk claimed since = %v, want ErrLeaseLost", err)
	}
	if err := la.w.leaseLost(); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("the old holder's writer after the refused write: leaseLost() = %v, want ErrLeaseLost", err)
	}
	if err := a.Holds(); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("the old holder's Holds() = %v, want ErrLeaseLost", err)
	}
	if got := lookup(t, l, targetA, sent.Key)[sent.Key]; got.Status != row.Queued || !strings.Contains(got.Message, "lease") {
		t.Errorf("row after the refused write = %+v, want it owed work, in doubt as the claim left it", got)
	}
}

// TestFleet_StartRunSparesLiveLeases: an import starting on the target
// leaves the rows in flight of a worker whose lease holds, and makes in
// doubt those of a lease that ran out.
func TestFleet_StartRunSparesLiveLeases(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	load(t, l, targetA, "a.csv", 2, chunkOf("a.csv", 2, 1), chunkOf("a.csv", 3, 1))
	live, dead := startWorker(t, l, targetA, time.Minute), startWorker(t, l, targetA, time.Second)
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
	got := storedStatus(t, l, cl.Rows[0].Key, cd.Rows[0].Key)
	if got[0] != InFlight || got[1] != InDoubt {
		t.Errorf("after StartRun: live worker's row %s, dead worker's %s; want in_flight, in_doubt", got[0], got[1])
	}
}

// storedStatus reads the stored status of keys, as claims see it.
func storedStatus(t *testing.T, l *Ledger, keys ...string) []Status {
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

// TestFleet_LoadedRunCountsItsRowsAsTheyEnded: the run a worker ends
// counts the loader's rows and its queued rows by how they ended.
func TestFleet_LoadedRunCountsItsRowsAsTheyEnded(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	load(t, l, targetA, "a.csv", 2, chunkOf("a.csv", 2, 2))
	w := startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, w)
	for i, q := range c.Rows {
		if err := w.MarkInFlight(t.Context(), sendFor(q.Key, "a.csv", q.SourceLine)); err != nil {
			t.Fatal(err)
		}
		if err := w.Record(t.Context(), Outcome{Key: q.Key, Status: []Status{Created, Failed}[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatal(err)
	}
	got := report(t, l, targetA).Runs[0].Counts
	if got["read"] != 2 || got["created"] != 1 || got["failed"] != 1 || got["not_started"] != 0 {
		t.Errorf("run counts = %v, want 2 read, 1 created, 1 failed, 0 not started", got)
	}
}

// TestFleet_FailuresLeaveOutRowsStillOwed: a row a worker holds is not a
// failure while its chunk is open, even in doubt; once the chunk is done,
// it is.
func TestFleet_FailuresLeaveOutRowsStillOwed(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	load(t, l, targetA, "a.csv", 1, chunkOf("a.csv", 2, 1))
	w := startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, w)
	q := c.Rows[0]
	if err := w.MarkInFlight(t.Context(), sendFor(q.Key, "a.csv", q.SourceLine)); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(t.Context(), Outcome{Key: q.Key, Status: InDoubt, Message: "no answer"}); err != nil {
		t.Fatal(err)
	}
	flushWorker(t, w)
	if got := failures(t, l, targetA); len(got) != 0 {
		t.Errorf("Failures() with the row's chunk open = %+v, want none", got)
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatal(err)
	}
	if got := failures(t, l, targetA); len(got) != 1 || got[0].Status != InDoubt {
		t.Errorf("Failures() with the chunk done = %+v, want the row in doubt", got)
	}
}

func flushWorker(t *testing.T, w *Worker) {
	t.Helper()
	if err := w.l.w.flush(t.Context()); err != nil {
		t.Fatalf("flush = %v", err)
	}
}

// TestFleet_ImportTargetsNamesTargetsWithAnImportAndCreatesNone: a target
// known only from a worker's budget has no import; asking creates no target.
func TestFleet_ImportTargetsNamesTargetsWithAnImportAndCreatesNone(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	importTargets := func() []string {
		t.Helper()
		names, err := l.ImportTargets(t.Context())
		if err != nil {
			t.Fatalf("ImportTargets() = %v", err)
		}
		return names
	}
	if got := importTargets(); len(got) != 0 {
		t.Errorf("ImportTargets() of an empty ledger = %q, want none", got)
	}
	load(t, l, "a", "a.csv", 1, chunkOf("a.csv", 2, 1))
	load(t, l, "b", "b.csv", 1, chunkOf("b.csv", 2, 1))
	if _, err := l.OpenBudget(t.Context(), "c"); err != nil {
		t.Fatal(err)
	}
	if got := importTargets(); strings.Join(got, ",") != "b,a" {
		t.Errorf("ImportTargets() = %q, want [b a]: the last started first, none without an import", got)
	}
	var n int
	if err := l.pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM targets`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d targets after ImportTargets, want 3", n)
	}
}

// TestLive_AWorkerWithoutAHeartbeatForALeaseIsSilent: report lists a
// worker whose heartbeat stopped for a whole lease (killed, or cut off)
// as silent, sending nothing, not at the rate of its last heartbeat; one
// that finished is no longer listed, and keeps its final count of
// requests.
func TestLive_AWorkerWithoutAHeartbeatForALeaseIsSilent(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	startRun(t, l, targetA, "f.csv") // the target exists
	stats := func() (int64, float64) { return 40, 95.5 }
	alive, err := l.StartWorker(t.Context(), targetA, WorkerOptions{Lease: 3 * time.Second, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pause(alive) })
	dead, err := l.StartWorker(t.Context(), targetA, WorkerOptions{Lease: 3 * time.Second, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	pause(dead)
	for _, w := range []*Worker{alive, dead} {
		if err := w.beat(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// The dead one's last heartbeat came 4 s ago, more than its lease.
	if _, err := l.pool.Exec(t.Context(), `UPDATE workers SET last_seen = now() - interval '4 seconds' WHERE id = $1`, dead.ID); err != nil {
		t.Fatal(err)
	}
	_, workers, err := l.Live(t.Context(), targetA)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]LiveWorker{}
	for _, lw := range workers {
		got[lw.ID] = lw
	}
	if lw := got[alive.ID]; lw.Silent || lw.Rate != 95.5 {
		t.Errorf("Live(): working worker %+v; want not silent, rate 95.5", lw)
	}
	if lw := got[dead.ID]; !lw.Silent || lw.Rate != 0 || lw.Requests != 40 {
		t.Errorf("Live(): worker without a heartbeat for a lease %+v; want silent, rate 0, its 40 requests", lw)
	}

	final := func() (int64, float64) { return 57, 90 }
	done, err := l.StartWorker(t.Context(), targetA, WorkerOptions{Lease: 3 * time.Second, Stats: final})
	if err != nil {
		t.Fatal(err)
	}
	if err := done.Finish(t.Context(), RunEnd{}); err != nil {
		t.Fatal(err)
	}
	var requests int64
	if err := l.pool.QueryRow(t.Context(), `SELECT requests FROM workers WHERE id = $1`, done.ID).Scan(&requests); err != nil {
		t.Fatal(err)
	}
	if requests != 57 {
		t.Errorf("a finished worker's requests = %d, want its final 57", requests)
	}
	if _, workers, _ = l.Live(t.Context(), targetA); len(workers) != 2 {
		t.Errorf("Live() lists %d workers, want 2 (not the finished one)", len(workers))
	}
}

// TestReport_ARunningFleetImportCountsItsRowsAsTheyStand: report's runs
// give an import that workers are still sending its rows as they stand,
// whichever process took them to an outcome, not the zeros of its record,
// which its end writes.
func TestReport_ARunningFleetImportCountsItsRowsAsTheyStand(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	load(t, l, targetA, "a.csv", 4, chunkOf("a.csv", 2, 2), chunkOf("a.csv", 4, 2))
	w := startWorker(t, l, targetA, time.Minute)
	c, _ := claimChunk(t, w)
	for i, q := range c.Rows {
		if err := w.MarkInFlight(t.Context(), sendFor(q.Key, "a.csv", q.SourceLine)); err != nil {
			t.Fatal(err)
		}
		if err := w.Record(t.Context(), Outcome{Key: q.Key, Status: []Status{Created, Rejected}[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatal(err)
	}
	r := report(t, l, targetA).Runs[0]
	got := r.Counts
	if r.Outcome != "running" || got["read"] != 4 || got["created"] != 1 || got["rejected"] != 1 || got["pending"] != 2 || got["not_started"] != 0 {
		t.Errorf("running run: %s, counts %v; want running, 4 read, 1 created, 1 rejected, 2 pending, 0 not started", r.Outcome, got)
	}
}
