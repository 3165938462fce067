package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// The fleet suite: the behaviours of a store whose imports queue their rows
// in chunks for workers that claim them by lease. The PostgreSQL ledger is
// its one store; another must pass it too.

// Worker is what the fleet suite needs of a store's worker.
type Worker interface {
	Claim(ctx context.Context) (ledger.Chunk, bool, error)
	MarkInFlight(ctx context.Context, s ledger.Send) error
	Record(ctx context.Context, o ledger.Outcome) error
	ChunkEnd(ctx context.Context, chunk int64, finished bool) error
	Holds() error
}

// FleetHarness is how the fleet suite makes a store and its parts. Each
// test gets a new store from Open.
type FleetHarness[W Worker] struct {
	// Open returns a new, empty store, closed by t.Cleanup; the suite's
	// other functions take what it returned.
	Open func(t *testing.T) any
	// Load starts a run of file on target, queues one chunk for each of
	// chunks, records the run loaded with read rows read, and returns its
	// id.
	Load func(t *testing.T, store any, target, file string, read int, chunks ...[]ledger.Send) int64
	// StartWorker starts a worker on target whose claims hold for lease.
	StartWorker func(t *testing.T, store any, target string, lease time.Duration) W
	// Pause stops w's heartbeat, as SIGSTOP stops its process.
	Pause func(w W)
	// Lookup is the store's Lookup.
	Lookup func(t *testing.T, store any, target string, keys ...string) map[string]ledger.Prior
	// RunEnded reports how run ended, if it has.
	RunEnded func(t *testing.T, store any, run int64) (outcome string, ended bool)
}

// TestFleet runs the fleet suite against the store h makes.
func TestFleet[W Worker](t *testing.T, h FleetHarness[W]) {
	tests := map[string]func(*testing.T, FleetHarness[W]){
		"QueuedRowsLookQueued":             testQueuedLookup[W],
		"EachChunkIsClaimedOnce":           testClaimOnce[W],
		"TheHeartbeatKeepsTheLease":        testHeartbeat[W],
		"AnExpiredLeaseMovesTheChunkOn":    testExpiry[W],
		"AChunkGivenBackIsClaimedAtOnce":   testGiveBack[W],
		"TheLastChunkDoneEndsTheLoadedRun": testRunEnds[W],
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, h)
		})
	}
}

// sends are n sends of file, from line 2.
func sends(file string, from, n int) []ledger.Send {
	var out []ledger.Send
	for i := range n {
		line := from + i
		key := fmt.Sprintf("email:%s-%d@example.com", file, line)
		out = append(out, ledger.Send{Key: key, Email: key[len("email:"):], Type: "INDIVIDUAL",
			CustomerID: fmt.Sprintf("cid-%s-%d", file, line), Fingerprint: "fp", SourceFile: file, SourceLine: line})
	}
	return out
}

func claim[W Worker](t *testing.T, w W) (ledger.Chunk, bool) {
	t.Helper()
	c, ok, err := w.Claim(t.Context())
	if err != nil {
		t.Fatalf("Claim() = %v", err)
	}
	return c, ok
}

func markRow[W Worker](t *testing.T, w W, q ledger.Queued) {
	t.Helper()
	s := ledger.Send{Key: q.Key, Email: q.Email, Type: q.Type, CustomerID: q.CustomerIDSent, Fingerprint: q.Fingerprint,
		SourceFile: q.SourceFile, SourceLine: q.SourceLine}
	if err := w.MarkInFlight(t.Context(), s); err != nil {
		t.Fatalf("MarkInFlight(%s) = %v", q.Key, err)
	}
}

func testQueuedLookup[W Worker](t *testing.T, h FleetHarness[W]) {
	s := h.Open(t)
	ss := sends("a.csv", 2, 2)
	h.Load(t, s, targetA, "a.csv", 2, ss)
	got := h.Lookup(t, s, targetA, ss[0].Key)
	if p, ok := got[ss[0].Key]; !ok || p.Status != row.Queued || !p.Status.MayExist() {
		t.Errorf("Lookup of a queued row = %+v, %v; want queued, which may exist", p, ok)
	}
}

func testClaimOnce[W Worker](t *testing.T, h FleetHarness[W]) {
	s := h.Open(t)
	h.Load(t, s, targetA, "a.csv", 5, sends("a.csv", 2, 3), sends("a.csv", 5, 2))
	a, b := h.StartWorker(t, s, targetA, time.Minute), h.StartWorker(t, s, targetA, time.Minute)
	c1, ok1 := claim(t, a)
	c2, ok2 := claim(t, b)
	_, ok3 := claim(t, a)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("three claims of two chunks: ok %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if c1.ID == c2.ID || len(c1.Rows)+len(c2.Rows) != 5 {
		t.Errorf("claims = chunk %d (%d rows), chunk %d (%d rows); want two chunks, 5 rows", c1.ID, len(c1.Rows), c2.ID, len(c2.Rows))
	}
}

func testHeartbeat[W Worker](t *testing.T, h FleetHarness[W]) {
	s := h.Open(t)
	h.Load(t, s, targetA, "a.csv", 2, sends("a.csv", 2, 2))
	a, b := h.StartWorker(t, s, targetA, 1500*time.Millisecond), h.StartWorker(t, s, targetA, 1500*time.Millisecond)
	claim(t, a)
	time.Sleep(3200 * time.Millisecond)
	if _, ok := claim(t, b); ok {
		t.Errorf("a chunk whose holder beats was claimed after twice its lease")
	}
	if err := a.Holds(); err != nil {
		t.Errorf("Holds() of a beating worker = %v, want nil", err)
	}
}

// testExpiry: a holder that stops beating loses its chunk once the lease
// runs out, by its own clock (Holds) and the store's: the next claim
// makes its row in flight in_doubt, naming the lease, and a write of the
// old holder for the chunk fails and changes nothing.
func testExpiry[W Worker](t *testing.T, h FleetHarness[W]) {
	s := h.Open(t)
	h.Load(t, s, targetA, "a.csv", 2, sends("a.csv", 2, 2))
	a, b := h.StartWorker(t, s, targetA, time.Second), h.StartWorker(t, s, targetA, time.Second)
	c, _ := claim(t, a)
	sent := c.Rows[0]
	markRow(t, a, sent)
	h.Pause(a)
	time.Sleep(1500 * time.Millisecond)
	if err := a.Holds(); err == nil {
		t.Errorf("Holds() past the lease = nil, want an error")
	}
	c2, ok := claim(t, b)
	if !ok || c2.ID != c.ID || len(c2.Rows) != 2 {
		t.Fatalf("claim after the lease ran out = chunk %d (%d rows), %v; want chunk %d, both rows", c2.ID, len(c2.Rows), ok, c.ID)
	}
	for _, q := range c2.Rows {
		if q.Key == sent.Key && (q.Status != row.InDoubt || !strings.Contains(q.Message, "lease")) {
			t.Errorf("row in flight of the expired chunk = %s %q, want in_doubt naming the lease", q.Status, q.Message)
		}
	}
	if err := a.Record(t.Context(), ledger.Outcome{Key: sent.Key, Status: row.Created}); err == nil {
		t.Errorf("Record by the old holder = nil, want an error")
	}
	if got := h.Lookup(t, s, targetA, sent.Key)[sent.Key]; !strings.Contains(got.Message, "lease") {
		t.Errorf("row after the old holder's write = %+v, want it in doubt as the claim left it", got)
	}
}

func testGiveBack[W Worker](t *testing.T, h FleetHarness[W]) {
	s := h.Open(t)
	h.Load(t, s, targetA, "a.csv", 2, sends("a.csv", 2, 2))
	a, b := h.StartWorker(t, s, targetA, time.Minute), h.StartWorker(t, s, targetA, time.Minute)
	c, _ := claim(t, a)
	if err := a.ChunkEnd(t.Context(), c.ID, false); err != nil {
		t.Fatalf("ChunkEnd(given back) = %v", err)
	}
	if c2, ok := claim(t, b); !ok || c2.ID != c.ID || len(c2.Rows) != 2 {
		t.Errorf("claim of a chunk given back = chunk %d (%d rows), %v; want chunk %d, 2 rows", c2.ID, len(c2.Rows), ok, c.ID)
	}
}

func testRunEnds[W Worker](t *testing.T, h FleetHarness[W]) {
	s := h.Open(t)
	run := h.Load(t, s, targetA, "a.csv", 2, sends("a.csv", 2, 2))
	w := h.StartWorker(t, s, targetA, time.Minute)
	c, _ := claim(t, w)
	for i, q := range c.Rows {
		markRow(t, w, q)
		if err := w.Record(t.Context(), ledger.Outcome{Key: q.Key, Status: []row.Status{row.Created, row.Failed}[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if outcome, ended := h.RunEnded(t, s, run); ended {
		t.Fatalf("run ended (%s) with a chunk open", outcome)
	}
	if err := w.ChunkEnd(t.Context(), c.ID, true); err != nil {
		t.Fatalf("ChunkEnd(done) = %v", err)
	}
	if outcome, ended := h.RunEnded(t, s, run); !ended || outcome != "completed" {
		t.Errorf("RunEnded() = %s, %v; want completed", outcome, ended)
	}
	if _, ok := claim(t, w); ok {
		t.Errorf("a done chunk was claimed again")
	}
}
