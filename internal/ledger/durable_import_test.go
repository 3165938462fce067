package ledger_test

// The importer's side of the ledger's durability: no request leaves before
// its row's mark is on disk. Here, not in package importer, because only the
// ledger's tests can stand in for its fsync (SetSyncLog).

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// armingReader gives a CSV's header, then arms before it gives the rows:
// the importer reads them only after StartRun.
type armingReader struct {
	header, rows string
	reads        int
	arm          func()
}

func (r *armingReader) Read(p []byte) (int, error) {
	r.reads++
	switch r.reads {
	case 1:
		return copy(p, r.header), nil
	case 2:
		r.arm()
	}
	if r.rows == "" {
		return 0, io.EOF
	}
	n := copy(p, r.rows)
	r.rows = r.rows[n:]
	return n, nil
}

// durableImport imports n new rows, 16 marked a write, with the ledger's
// fsyncs of the log going through syncLog once the rows are read.
type durableImport struct {
	srv     *sandbox.Server
	path    string
	creates chan struct{} // a create request was answered
}

func newDurableImport(t *testing.T) *durableImport {
	t.Helper()
	d := &durableImport{path: filepath.Join(t.TempDir(), "ledger.db"), creates: make(chan struct{}, 1)}
	srv, err := sandbox.NewServer(sandbox.Options{Logf: func(format string, args ...any) {
		if strings.Contains(fmt.Sprintf(format, args...), "/api/v1/customers/") {
			select {
			case d.creates <- struct{}{}:
			default:
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	d.srv = srv
	return d
}

func (d *durableImport) run(t *testing.T, rows int, syncLog func(sync func() error) error) (importer.Summary, error) {
	t.Helper()
	l, err := ledger.Open(t.Context(), d.path, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var armed atomic.Bool
	ledger.SetSyncLog(l, func(sync func() error) error {
		if !armed.Load() {
			return sync()
		}
		return syncLog(sync)
	})
	client, err := ripio.New(ripio.Config{BaseURL: d.srv.URL(), ClientID: d.srv.ClientID(), ClientSecret: d.srv.ClientSecret(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range rows {
		fmt.Fprintf(&b, "d%05d@example.com,INDIVIDUAL\n", i)
	}
	im := importer.New(importer.Config{SourceFile: "c.csv", MarkAhead: 16, Concurrency: 4, Backoff: time.Millisecond},
		client, ratelimit.New(ratelimit.Config{}), importer.Ledger(l), "t")
	return im.Import(t.Context(), &armingReader{header: "email,type\n", rows: b.String(), arm: func() { armed.Store(true) }})
}

// inFlight counts the rows the ledger holds in flight, as another process
// would read them.
func (d *durableImport) inFlight(t *testing.T) int {
	db, err := sql.Open("sqlite3", "file:"+d.path+"?mode=ro")
	if err != nil {
		t.Error(err)
		return 0
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM rows WHERE status = 'in_flight'`).Scan(&n); err != nil {
		t.Error(err)
	}
	return n
}

// TestImport_NoRequestBeforeItsMarkIsDurable holds the first chunk's fsync
// until the importer has marked the next chunk (committed, while the disk
// syncs the first: the test checks the pipeline too), and a while more: no
// request may leave meanwhile. An importer that did not wait could still
// send nothing in that while, so the test may miss such a bug; it never
// fails a correct, pipelined importer.
func TestImport_NoRequestBeforeItsMarkIsDurable(t *testing.T) {
	d := newDurableImport(t)
	var once sync.Once
	sum, err := d.run(t, 64, func(sync func() error) error {
		once.Do(func() {
			for deadline := time.Now().Add(10 * time.Second); d.inFlight(t) < 32; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("the next chunk was not marked while the first one's fsync ran: %d rows in flight after 10s", d.inFlight(t))
					return
				}
			}
			select {
			case <-d.creates:
				t.Errorf("a create request left before the first chunk's fsync returned")
			case <-time.After(200 * time.Millisecond):
			}
		})
		return sync()
	})
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	if sum.Counts.Created != 64 || len(d.srv.Customers()) != 64 {
		t.Errorf("created %d, the server holds %d, want 64", sum.Counts.Created, len(d.srv.Customers()))
	}
}

// TestImport_FailedSyncSendsNothing: a mark that cannot be synced sends
// none of its rows and fails the run.
func TestImport_FailedSyncSendsNothing(t *testing.T) {
	d := newDurableImport(t)
	eio := errors.New("EIO")
	sum, err := d.run(t, 64, func(func() error) error { return eio })
	if !errors.Is(err, eio) {
		t.Errorf("Import() = %v, want %v", err, eio)
	}
	if n := d.srv.Stats().Requests; n != 0 {
		t.Errorf("%d create requests left, want 0", n)
	}
	if sum.Outcome != "aborted" || sum.Counts.Created != 0 {
		t.Errorf("summary %+v, outcome %s: want aborted, nothing created", sum.Counts, sum.Outcome)
	}
}
