package postgres

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blackHole forwards TCP between its clients and target until hang is
// set; then it drops whatever either side sends, holding the connections
// open: a database that hangs, or a network that loses every packet.
type blackHole struct {
	ln    net.Listener
	hang  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

// closeAll closes every connection through the hole.
func (b *blackHole) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
}

func newBlackHole(t *testing.T, target string) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln}
	t.Cleanup(func() { ln.Close(); b.closeAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, c, s)
			b.mu.Unlock()
			go b.pipe(c, s)
			go b.pipe(s, c)
		}
	}()
	return b
}

func (b *blackHole) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if b.hang.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// hungLedger opens a ledger with a timeout of 500ms through a blackHole,
// starts a run and marks a row, then hangs the hole.
func hungLedger(t *testing.T) (*Ledger, *Run) {
	t.Helper()
	u, err := url.Parse(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	schema := newSchema(t, u.String())
	hole := newBlackHole(t, u.Host)
	u.Host = hole.ln.Addr().String()
	l, err := Open(t.Context(), u.String(), Options{Schema: schema, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, l, targetA, "h.csv")
	t.Cleanup(hole.closeAll) // before the run's own cleanup, which would hang
	mark(t, r, sendFor("h.csv-2", "h.csv", 2))
	hole.hang.Store(true)
	return l, r
}

// TestLedger_AHungDatabaseFailsTheWriteWithinTheTimeout: a write whose
// commit gets no answer (the database hung, or the way to it) fails once
// Options.Timeout has passed, and every later write with it, so the run
// stops with the ledger's error instead of waiting forever.
func TestLedger_AHungDatabaseFailsTheWriteWithinTheTimeout(t *testing.T) {
	t.Parallel()
	_, r := hungLedger(t)
	done := make(chan error, 1)
	go func() { done <- r.MarkInFlight(t.Context(), sendFor("h.csv-3", "h.csv", 3)) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("MarkInFlight to a hung database = nil, want an error")
		}
		t.Logf("MarkInFlight = %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("MarkInFlight to a hung database had not returned after 20s")
	}
	if err := r.MarkInFlight(t.Context(), sendFor("h.csv-4", "h.csv", 4)); err == nil {
		t.Error("a write after the hung one = nil, want the ledger's error")
	}
}

// TestLedger_AHungDatabaseFailsALookupWithinTheTimeout: a lookup that gets
// no answer fails once Options.Timeout has passed: a resume of done rows
// writes nothing, and would otherwise wait for ever.
func TestLedger_AHungDatabaseFailsALookupWithinTheTimeout(t *testing.T) {
	t.Parallel()
	l, _ := hungLedger(t)
	done := make(chan error, 1)
	go func() {
		_, err := l.Lookup(t.Context(), targetA, []string{"h.csv-2"})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Lookup at a hung database = nil, want an error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Lookup at a hung database had not returned after 20s")
	}
}
