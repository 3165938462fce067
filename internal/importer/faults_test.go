package importer_test

import (
	"errors"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestImport_FaultSuite runs an import through each failure the fake server
// can inject and checks that it ends, after as many re-runs as it takes,
// with every row on the server exactly once and the ledger agreeing.
func TestImport_FaultSuite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rows    int
		opts    sandbox.Options
		ro      runOpts
		during  func(t *testing.T, fx *fixture) // runs while the first import is going
		maxRuns int
	}{
		{
			name: "TokensExpireEvery2s", rows: 600,
			opts: sandbox.Options{TokenTTL: 2 * time.Second},
			ro:   runOpts{rps: 150},
		},
		{
			name: "429StormWithRetryAfter", rows: 300,
			opts: sandbox.Options{RateLimit: 50, RateBurst: 5, RetryAfter: true},
			ro:   runOpts{rps: 1000, cfg: importer.Config{Concurrency: 32}},
		},
		{
			name: "429StormWithoutRetryAfter", rows: 300,
			opts: sandbox.Options{RateLimit: 50, RateBurst: 5},
			ro:   runOpts{rps: 1000, cfg: importer.Config{Concurrency: 32}},
		},
		{
			name: "HangingResponsesBeyondTheTimeout", rows: 200,
			opts: sandbox.Options{HangAfterCommit: 0.05, Seed: 7},
			ro:   runOpts{timeout: 200 * time.Millisecond, cfg: importer.Config{Concurrency: 16}},
		},
		{
			name: "5xxBeforeAndAfterCommit", rows: 400,
			opts: sandbox.Options{FailBeforeCommit: 0.05, FailAfterCommit: 0.05, DropAfterCommit: 0.03, Seed: 9},
			ro:   runOpts{},
		},
		{
			name: "ServerRestartsMidRun", rows: 400,
			opts: sandbox.Options{Latency: 2 * time.Millisecond},
			ro:   runOpts{rps: 400, cfg: importer.Config{Backoff: 100 * time.Millisecond, MaxAttempts: 8}},
			during: func(t *testing.T, fx *fixture) {
				for len(fx.srv.Customers()) < 100 {
					time.Sleep(5 * time.Millisecond)
				}
				fx.restart(t, 300*time.Millisecond)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data, emails := genCSV(tt.rows, "suite")
			opts := tt.opts
			opts.DBPath = filepath.Join(t.TempDir(), "server.db")
			fx := newFixture(t, opts)
			fx.opts = opts
			done := make(chan struct{})
			if tt.during != nil {
				go func() { defer close(done); tt.during(t, fx) }()
			} else {
				close(done)
			}
			runs := 0
			for runs < 4 {
				runs++
				sum, err := fx.importCSV(t, data, tt.ro)
				<-done
				if err != nil {
					t.Fatalf("run %d: %v", runs, err)
				}
				t.Logf("run %d: %+v requests %d throttled %d", runs, sum.Counts, sum.Requests, sum.Throttled)
				if sum.NotDone() == 0 {
					break
				}
			}
			assertServerMatchesLedger(t, fx, emails)
			rep := fx.report(t)
			if rep.Rows != len(emails) || rep.Counts["created"]+rep.Counts["exists"] != len(emails) {
				t.Errorf("report after %d runs: %d rows %v; want all %d created or exists", runs, rep.Rows, rep.Counts, len(emails))
			}
		})
	}
}

// restart closes the fake server and starts it again on the same address
// and customer file after down, as a deploy would.
func (fx *fixture) restart(t *testing.T, down time.Duration) {
	t.Helper()
	u, err := url.Parse(fx.srv.URL())
	if err != nil {
		t.Error(err)
		return
	}
	fx.srv.Close()
	time.Sleep(down)
	opts := fx.opts
	opts.Addr = u.Host
	srv, err := sandbox.NewServer(opts)
	for i := 0; err != nil && i < 50; i++ { // the port may linger briefly
		time.Sleep(20 * time.Millisecond)
		srv, err = sandbox.NewServer(opts)
	}
	if err != nil {
		t.Errorf("restart: %v", err)
		return
	}
	t.Cleanup(func() { srv.Close() })
	fx.setServer(srv)
}

func TestImport_MaxErrorsAbortsTheRun(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{})
	fx.baseURL = rejectingProxy(t, fx)
	data, _ := genCSV(50, "x") // valid rows after the rejected ones
	rejected := "email,type\n"
	for _, c := range "abcdefghij" {
		rejected += string(c) + "@reject.example,INDIVIDUAL\n"
	}
	data = rejected + data[len("email,type\n"):]
	sum, err := fx.importCSV(t, data, runOpts{cfg: importer.Config{MaxErrors: 3, Concurrency: 1}})
	if !errors.Is(err, importer.ErrTooManyErrors) {
		t.Fatalf("Import with --max-errors 3 and 10 rejected rows: err = %v, want ErrTooManyErrors", err)
	}
	if sum.Rejected < 3 || sum.Created == 50 || sum.Outcome != "aborted" {
		t.Errorf("summary = %+v outcome %s; want >= 3 rejected, the rest not all sent, aborted", sum.Counts, sum.Outcome)
	}
}
