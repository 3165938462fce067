package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// TestWork_TakesOverAnExpiredChunkWhileBusy: a worker whose one-request
// pool is busy for three leases with its own chunk (a slow server) claims a
// dead worker's chunk within moments of that chunk's lease running out,
// as the database's clock has it (claimed_at against the dead lease's
// lease_until): the rows of the expired chunk go ahead of its own. The
// dead worker's row in flight becomes in doubt, is sent again (the target
// keeps the ids it is sent), and every row ends created.
func TestWork_TakesOverAnExpiredChunkWhileBusy(t *testing.T) {
	t.Parallel()
	const lease = 2 * time.Second // a loaded machine's heartbeats keep it
	l := newLedger(t)
	dead := chunkOf("a.csv", 2, 3)
	own := chunkOf("a.csv", 5, 40) // 40 requests of 150 ms: three leases
	load(t, l, targetA, "a.csv", 43, dead, own)
	d := startWorker(t, l, targetA, lease)
	c, _ := claimChunk(t, d)
	if err := d.MarkInFlight(t.Context(), sendFor(c.Rows[0].Key, "a.csv", c.Rows[0].SourceLine)); err != nil {
		t.Fatal(err)
	}
	pause(d) // its heartbeat stops: the lease runs out one lease after the claim
	var expires time.Time
	if err := l.pool.QueryRow(t.Context(), `SELECT lease_until FROM chunks WHERE id = $1`, c.ID).Scan(&expires); err != nil {
		t.Fatal(err)
	}

	w := startWorker(t, l, targetA, lease)
	im := importer.New(importer.Config{Concurrency: 1}, slowSender{150 * time.Millisecond}, freePacer{}, storeOf{l}, targetA)
	idle := func(ctx context.Context) (bool, error) { return w.Idle(ctx, 0) }
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sum, err := im.Work(ctx, workerOf{w}, importer.WorkConfig{Done: idle, Poll: lease / 20})
	if err != nil {
		t.Fatalf("Work() = %v", err)
	}
	if sum.Created != 43 {
		t.Errorf("Work created %d rows, want 43", sum.Created)
	}
	var claimed time.Time
	var owner int64
	if err := l.pool.QueryRow(t.Context(), `SELECT claimed_at, owner FROM chunks WHERE id = $1`, c.ID).Scan(&claimed, &owner); err != nil {
		t.Fatal(err)
	}
	if owner != w.ID {
		t.Fatalf("the dead worker's chunk was last claimed by worker %d, want %d", owner, w.ID)
	}
	// Before: the chunk was claimed once every row of the worker's own was
	// started, about 5.85 s of sending after its claim: 4 s late.
	late := claimed.Sub(expires)
	t.Logf("claimed %v after the lease ran out", late)
	if late > lease/2 {
		t.Errorf("the dead worker's chunk was claimed %v after its lease ran out, want within %v", late, lease/2)
	}
	got := lookup(t, l, targetA, c.Rows[0].Key)
	if p := got[c.Rows[0].Key]; p.Status != row.Created || p.Attempts < 2 {
		t.Errorf("the dead worker's row in flight: %s after %d attempts; want created, sent again", p.Status, p.Attempts)
	}
}

// TestWorker_ClaimExpiredTakesOnlyARunOutLease: ClaimExpired leaves a
// chunk nobody holds to Claim, says how long until the lease another
// worker holds runs out (and 0 when no other holds one), and claims that
// chunk once it has, its row in flight then in doubt.
func TestWorker_ClaimExpiredTakesOnlyARunOutLease(t *testing.T) {
	t.Parallel()
	const lease = time.Second
	l := newLedger(t)
	first := chunkOf("a.csv", 2, 2)
	load(t, l, targetA, "a.csv", 4, first, chunkOf("a.csv", 4, 2))
	a, b := startWorker(t, l, targetA, lease), startWorker(t, l, targetA, lease)
	if _, ok, wait, err := b.ClaimExpired(t.Context()); err != nil || ok || wait != 0 {
		t.Fatalf("ClaimExpired() with no chunk held = ok %v, wait %v, %v; want nothing to claim, wait 0", ok, wait, err)
	}
	c, _ := claimChunk(t, a)
	if err := a.MarkInFlight(t.Context(), first[0]); err != nil {
		t.Fatal(err)
	}
	pause(a)
	_, ok, wait, err := b.ClaimExpired(t.Context())
	if err != nil || ok || wait <= 0 || wait > lease {
		t.Fatalf("ClaimExpired() while another holds a live lease = ok %v, wait %v, %v; want nothing, a wait within %v", ok, wait, err, lease)
	}
	time.Sleep(wait + 10*time.Millisecond)
	got, ok, _, err := b.ClaimExpired(t.Context())
	if err != nil || !ok || got.ID != c.ID {
		t.Fatalf("ClaimExpired() once the lease ran out = chunk %d, ok %v, %v; want chunk %d", got.ID, ok, err, c.ID)
	}
	if got.Rows[0].Key != first[0].Key || got.Rows[0].Status != row.InDoubt {
		t.Errorf("the row in flight of the expired chunk: claimed as %s; want in_doubt", got.Rows[0].Status)
	}
}

// slowSender creates every customer, keeping the id sent, each after d.
type slowSender struct{ d time.Duration }

func (s slowSender) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	time.Sleep(s.d)
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: true}, nil
}

// freePacer lets every request leave at once.
type freePacer struct{}

func (freePacer) Reserve(context.Context) (func(context.Context) error, error) { return nil, nil }
func (freePacer) Accepted()                                                    {}
func (freePacer) Throttled(time.Duration)                                      {}
func (freePacer) Pause(time.Duration)                                          {}

// storeOf and workerOf are the ledger and its worker as the importer's.
type storeOf struct{ *Ledger }

func (s storeOf) StartRun(ctx context.Context, info ledger.RunInfo) (importer.Run, error) {
	panic("a worker starts no run")
}

type workerOf struct{ *Worker }

func (w workerOf) MarkInFlightCommitted(ctx context.Context, sends []ledger.Send) (importer.Pending, error) {
	return w.Worker.MarkInFlightCommitted(ctx, sends)
}
