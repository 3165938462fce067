package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestWriter_FailedCommitFailsLaterWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openForClose(t, path, Options{})
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("before", "f.csv", 2))
	boom := errors.New("boom")
	if err := l.w.submit(t.Context(), func(*wtx) error { return boom }, true); !errors.Is(err, boom) {
		t.Fatalf("a failing write = %v, want %v", err, boom)
	}
	wantFailedWrites(t, l, r, "after", "a failed commit", boom)
	if err := l.Close(); !errors.Is(err, boom) {
		t.Errorf("second Close = %v, want %v again", err, boom)
	}
	if err := r.MarkInFlight(t.Context(), sendFor("closed", "f.csv", 4)); err == nil {
		t.Errorf("MarkInFlight after Close = nil, want an error")
	}

	l = openLedger(t, path)
	got := lookup(t, l, targetA, "before", "after")
	if got["before"].Status != InFlight || len(got) != 1 {
		t.Errorf("Lookup after the failed commit = %+v, want before in flight, and no after", got)
	}
}

// TestWriter_SyncsWhatIsWaitedFor checks the fsync rule of group commit:
// a commit nobody waits for is not synced; a waited one is, and covers the
// earlier ones; a Flush with nothing new since the last fsync syncs nothing.
func TestWriter_SyncsWhatIsWaitedFor(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "f.csv")
	mark(t, r, sendFor("k1", "f.csv", 2)) // the writer is idle once this returns
	var syncs atomic.Int32
	l.w.syncWAL = func() error { syncs.Add(1); return nil }
	update := func(st Status, wait bool) func() error {
		return func() error {
			return l.w.submit(t.Context(), func(tx *wtx) error {
				_, err := tx.exec(`UPDATE rows SET status = ? WHERE row_key = ?`, st, "k1")
				return err
			}, wait)
		}
	}
	committed := func(st Status) func() error { // waits for the commit alone
		return func() error {
			for lookup(t, l, targetA, "k1")["k1"].Status != st {
				time.Sleep(time.Millisecond)
			}
			return nil
		}
	}
	flush := func() error { return r.Flush(t.Context()) }
	steps := []struct {
		name      string
		do        []func() error
		wantSyncs int32
	}{
		{"an outcome, not waited", []func() error{update(Failed, false), committed(Failed)}, 0},
		{"a flush", []func() error{flush}, 1},
		{"another flush, nothing new", []func() error{flush}, 1},
		{"an outcome, not waited, again", []func() error{update(InDoubt, false), committed(InDoubt)}, 1},
		{"a waited write", []func() error{update(Created, true)}, 2},
		{"a flush after it", []func() error{flush}, 2},
	}
	for _, st := range steps {
		for _, do := range st.do {
			if err := do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		if got := syncs.Load(); got != st.wantSyncs {
			t.Errorf("after %s: %d syncs of the log, want %d", st.name, got, st.wantSyncs)
		}
	}
	if got := lookup(t, l, targetA, "k1")["k1"].Status; got != Created {
		t.Errorf("Lookup(k1).Status = %s, want %s", got, Created)
	}
}

// TestWriter_CommitsWhileTheLogSyncs checks the pipeline: marks are
// committed, and seen, while the fsync of earlier ones runs; they are
// durable only after an fsync that began after their commit; one fsync
// covers the commits made while the last one ran.
func TestWriter_CommitsWhileTheLogSyncs(t *testing.T) {
	t.Parallel()
	l, r, h, p1 := heldMark(t, Options{})
	t.Cleanup(func() { l.Close() })
	durable1 := make(chan error, 1)
	go func() { durable1 <- p1.Durable() }()
	p2, err := r.MarkInFlightCommitted(t.Context(), []Send{sendFor("b", "f.csv", 3)})
	if err != nil {
		t.Fatalf("MarkInFlightCommitted(b) while a's fsync runs = %v", err)
	}
	p3, err := r.MarkInFlightCommitted(t.Context(), []Send{sendFor("c", "f.csv", 4)})
	if err != nil {
		t.Fatalf("MarkInFlightCommitted(c) while a's fsync runs = %v", err)
	}
	got := lookup(t, l, targetA, "a", "b", "c")
	for _, k := range []string{"a", "b", "c"} {
		if got[k].Status != InFlight {
			t.Errorf("Lookup(%s) while a's fsync runs = %+v, want in flight", k, got[k])
		}
	}
	select {
	case err := <-durable1:
		t.Fatalf("a durable (%v) before its fsync returned", err)
	default:
	}
	waitSyncQueue(t, l, 2) // b's and c's requests
	h.hold.Store(true)     // and hold the next fsync too
	h.release <- nil
	if err := <-durable1; err != nil {
		t.Fatalf("a: Durable() = %v", err)
	}
	<-h.entered // one fsync for b and c, begun after their commits
	durable2 := make(chan error, 1)
	go func() { durable2 <- p2.Durable() }()
	select {
	case err := <-durable2:
		t.Fatalf("b durable (%v) before an fsync after its commit returned", err)
	default:
	}
	h.release <- nil
	for name, p := range map[string]*Pending{"b": p2, "c": p3} {
		if err := p.Durable(); err != nil {
			t.Errorf("%s: Durable() = %v", name, err)
		}
	}
	if n := h.calls.Load(); n != 2 {
		t.Errorf("%d fsyncs for three marks, two of them made during the first fsync; want 2", n)
	}
}

// TestWriter_FailedSyncFailsTheLedger: a log that cannot be synced fails
// the writes waiting for it and every later one.
func TestWriter_FailedSyncFailsTheLedger(t *testing.T) {
	t.Parallel()
	l := openForClose(t, filepath.Join(t.TempDir(), "ledger.db"), Options{})
	r := startRun(t, l, targetA, "f.csv")
	boom := errors.New("EIO")
	l.w.syncWAL = func() error { return boom }
	p, err := r.MarkInFlightCommitted(t.Context(), []Send{sendFor("a", "f.csv", 2)})
	if err != nil {
		t.Fatalf("MarkInFlightCommitted(a) = %v (the commit itself works)", err)
	}
	if err := p.Durable(); !errors.Is(err, boom) {
		t.Errorf("Durable() = %v, want %v", err, boom)
	}
	if err := p.Durable(); !errors.Is(err, boom) {
		t.Errorf("Durable() again = %v, want %v", err, boom)
	}
	wantFailedWrites(t, l, r, "b", "a failed sync", boom)
}

// heldSync stands in for the writer's fsync of the log: while hold is set,
// the next fsync signals entered and returns what release sends.
type heldSync struct {
	hold    atomic.Bool
	entered chan struct{}
	release chan error
	calls   atomic.Int32
}

func holdSyncs(l *Ledger) *heldSync {
	h := &heldSync{entered: make(chan struct{}), release: make(chan error)}
	l.w.syncWAL = func() error {
		h.calls.Add(1)
		if h.hold.CompareAndSwap(true, false) {
			h.entered <- struct{}{}
			return <-h.release
		}
		return nil
	}
	return h
}

// heldMark opens a ledger, which the test closes, starts a run and marks
// "a"; it returns once a's fsync runs, held until h.release.
func heldMark(t *testing.T, opts Options) (*Ledger, *Run, *heldSync, *Pending) {
	t.Helper()
	l := openForClose(t, filepath.Join(t.TempDir(), "ledger.db"), opts)
	r := startRun(t, l, targetA, "f.csv")
	h := holdSyncs(l)
	h.hold.Store(true)
	p, err := r.MarkInFlightCommitted(t.Context(), []Send{sendFor("a", "f.csv", 2)})
	if err != nil {
		t.Fatalf("MarkInFlightCommitted(a) = %v", err)
	}
	<-h.entered
	return l, r, h, p
}

// waitSyncQueue waits until n sync requests wait for the syncer.
func waitSyncQueue(t *testing.T, l *Ledger, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(l.w.toSync) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sync requests queued after 10s, want %d", len(l.w.toSync), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWriter_CoalescedFlushDoesNotHideAMark: a request that needs no fsync
// (a Flush with nothing new) taken in one go with a later mark's must not
// let the mark go unsynced.
func TestWriter_CoalescedFlushDoesNotHideAMark(t *testing.T) {
	t.Parallel()
	l, r, h, pa := heldMark(t, Options{MaxBatch: 1})
	t.Cleanup(func() { l.Close() })
	flushed := make(chan error, 1)
	if err := l.w.send(t.Context(), writeOp{apply: func(*wtx) error { return nil }, done: flushed}); err != nil {
		t.Fatalf("queueing a flush: %v", err)
	}
	pb, err := r.MarkInFlightCommitted(t.Context(), []Send{sendFor("b", "f.csv", 3)})
	if err != nil {
		t.Fatalf("MarkInFlightCommitted(b) = %v", err)
	}
	waitSyncQueue(t, l, 2) // the flush's request, then b's
	before := h.calls.Load()
	h.release <- nil
	for name, p := range map[string]*Pending{"a": pa, "b": pb} {
		if err := p.Durable(); err != nil {
			t.Errorf("%s: Durable() = %v", name, err)
		}
	}
	if err := <-flushed; err != nil {
		t.Errorf("flush = %v", err)
	}
	if h.calls.Load() == before {
		t.Errorf("b acknowledged durable with no fsync begun after its commit")
	}
}

// TestWriter_NoAckAfterAFailedSync: a commit waiting behind a failed fsync
// is not acknowledged by a later fsync that would succeed.
func TestWriter_NoAckAfterAFailedSync(t *testing.T) {
	t.Parallel()
	l, r, h, pa := heldMark(t, Options{})
	pb, err := r.MarkInFlightCommitted(t.Context(), []Send{sendFor("b", "f.csv", 3)})
	if err != nil {
		t.Fatalf("MarkInFlightCommitted(b) = %v", err)
	}
	waitSyncQueue(t, l, 1)
	eio := errors.New("EIO")
	h.release <- eio // a's fsync fails; the next would succeed
	if err := pa.Durable(); !errors.Is(err, eio) {
		t.Errorf("a: Durable() = %v, want %v", err, eio)
	}
	if err := pb.Durable(); !errors.Is(err, eio) {
		t.Errorf("b: Durable() = %v after the fsync before it failed, want %v", err, eio)
	}
	if err := l.Close(); !errors.Is(err, eio) {
		t.Errorf("Close() = %v, want %v", err, eio)
	}
}

// TestWriter_CloseWaitsForTheSyncer: Close returns only once the fsync it
// found running has returned, with its error.
func TestWriter_CloseWaitsForTheSyncer(t *testing.T) {
	t.Parallel()
	l, _, h, pa := heldMark(t, Options{})
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	// The fsync is held, so Close cannot end: a Close that did not wait
	// would show up here (most of the time; it never fails a correct one).
	var closeErr error
	early := false
	select {
	case closeErr = <-closed:
		early = true
		t.Errorf("Close() = %v while an fsync runs", closeErr)
	case <-time.After(100 * time.Millisecond):
	}
	eio := errors.New("EIO")
	h.release <- eio
	if !early {
		closeErr = <-closed
	}
	if !errors.Is(closeErr, eio) {
		t.Errorf("Close() = %v, want the fsync's error %v", closeErr, eio)
	}
	if err := pa.Durable(); !errors.Is(err, eio) {
		t.Errorf("Durable() = %v, want %v", err, eio)
	}
}

// TestWriter_SyncsTheLogSQLiteWrites: a ledger reached through a symlink
// has its log by the real file; the writer syncs that one, even when a
// stray file sits by the link.
func TestWriter_SyncsTheLogSQLiteWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "data", "ledger.db")
	if err := os.Mkdir(filepath.Dir(real), 0o700); err != nil {
		t.Fatal(err)
	}
	openLedger(t, real).Close()
	link := filepath.Join(dir, "ledger.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	for _, stray := range []bool{false, true} {
		if stray {
			if err := os.WriteFile(link+"-wal", nil, 0o600); err != nil { // left from before a move
				t.Fatal(err)
			}
		}
		l := openLedger(t, link)
		r := startRun(t, l, targetA, "f.csv")
		mark(t, r, sendFor("k1", "f.csv", 2))
		synced, err := l.w.wal.Stat()
		if err != nil {
			t.Fatal(err)
		}
		written, err := os.Stat(real + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(synced, written) {
			t.Errorf("stray=%v: the writer syncs %s, not the log SQLite writes (%s-wal)", stray, synced.Name(), real)
		}
		finish(t, r, RunEnd{Outcome: "completed"})
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	}
}
