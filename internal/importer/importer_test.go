package importer_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/row"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// fixture is a fake Ripio server and a real ledger file.
type fixture struct {
	mu         sync.Mutex
	opts       sandbox.Options // as started, for restarts
	srv        *sandbox.Server
	baseURL    string // the server's, unless a test puts a proxy in front
	ledgerPath string
	target     string
}

func newFixture(t *testing.T, opts sandbox.Options) *fixture {
	t.Helper()
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		t.Fatalf("sandbox.NewServer: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return &fixture{srv: srv, baseURL: srv.URL(), ledgerPath: filepath.Join(t.TempDir(), "ledger.db"), target: "test-target"}
}

type runOpts struct {
	cfg       importer.Config
	rps       float64
	timeout   time.Duration
	secret    string
	ctx       context.Context
	limiter   ratelimit.Config
	useConfig bool
}

// setServer swaps in a restarted server (same address).
func (fx *fixture) setServer(srv *sandbox.Server) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	fx.srv = srv
}

// importCSV runs one import of data through a fresh client and ledger handle.
func (fx *fixture) importCSV(t *testing.T, data string, ro runOpts) (importer.Summary, error) {
	t.Helper()
	ctx := ro.ctx
	if ctx == nil {
		ctx = t.Context()
	}
	secret := ro.secret
	if secret == "" {
		secret = fx.srv.ClientSecret()
	}
	timeout := ro.timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	client, err := ripio.New(ripio.Config{BaseURL: fx.baseURL, ClientID: fx.srv.ClientID(), ClientSecret: secret, Timeout: timeout})
	if err != nil {
		t.Fatalf("ripio.New: %v", err)
	}
	l, err := ledger.Open(context.Background(), fx.ledgerPath, ledger.Options{})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	defer l.Close()
	lc := ro.limiter
	if !ro.useConfig {
		lc = ratelimit.Config{Rate: ro.rps}
	}
	cfg := ro.cfg
	if cfg.SourceFile == "" {
		cfg.SourceFile = "customers.csv"
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	im := importer.New(cfg, client, ratelimit.New(lc), importer.Ledger(l), fx.target)
	return im.Import(ctx, strings.NewReader(data))
}

// ledgerRows reads the ledger's keyed rows: key -> status.
func (fx *fixture) ledgerRows(t *testing.T) map[string]ledgerRow {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+fx.ledgerPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT row_key, status, customer_id_sent, customer_id, attempts, http_status, error_message FROM rows`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]ledgerRow{}
	for rows.Next() {
		var k string
		var r ledgerRow
		if err := rows.Scan(&k, &r.status, &r.sent, &r.returned, &r.attempts, &r.http, &r.message); err != nil {
			t.Fatal(err)
		}
		out[k] = r
	}
	return out
}

type ledgerRow struct {
	status         string
	sent, returned string
	attempts, http int
	message        string
}

func (fx *fixture) report(t *testing.T) ledger.Report {
	t.Helper()
	l, err := ledger.Open(context.Background(), fx.ledgerPath, ledger.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rep, err := l.Report(context.Background(), fx.target, 10)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// assertServerMatchesLedger checks, row by row, that every valid email of
// the file is on the server exactly once and that the ledger says so.
func assertServerMatchesLedger(t *testing.T, fx *fixture, emails []string) {
	t.Helper()
	custs := fx.srv.Customers()
	byEmail := map[string]int{}
	for _, c := range custs {
		byEmail[strings.ToLower(c.Email)]++
	}
	if len(custs) != len(emails) {
		t.Errorf("server holds %d customers, want %d", len(custs), len(emails))
	}
	rows := fx.ledgerRows(t)
	for _, e := range emails {
		if n := byEmail[strings.ToLower(e)]; n != 1 {
			t.Errorf("server has %s %d times, want 1", e, n)
		}
		r, ok := rows["email:"+strings.ToLower(e)]
		if !ok {
			t.Errorf("ledger has no row for %s", e)
			continue
		}
		if r.status != "created" && r.status != "exists" {
			t.Errorf("ledger status of %s = %s, want created or exists", e, r.status)
		}
		if want := importer.CustomerIDFor(e); r.sent != want {
			t.Errorf("ledger customerId sent for %s = %s, want %s", e, r.sent, want)
		}
		if _, ok := fx.srv.Customer(r.sent); !ok {
			t.Errorf("server has no customer %s (%s)", r.sent, e)
		}
	}
}

func genCSV(n int, prefix string) (string, []string) {
	var b strings.Builder
	b.WriteString("email,type\n")
	emails := make([]string, n)
	for i := range n {
		emails[i] = fmt.Sprintf("%s%05d@example.com", prefix, i)
		typ := "INDIVIDUAL"
		if i%3 == 0 {
			typ = "BUSINESS"
		}
		fmt.Fprintf(&b, "%s,%s\n", emails[i], typ)
	}
	return b.String(), emails
}

func TestImport_CreatesEveryRowOnceAndSecondRunSendsNothing(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../samples/customers.csv")
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
		emails = append(emails, strings.Split(line, ",")[0])
	}
	fx := newFixture(t, sandbox.Options{})

	sum, err := fx.importCSV(t, string(data), runOpts{})
	if err != nil {
		t.Fatalf("first import: %v", err)
	}
	if sum.Created != int64(len(emails)) || sum.NotDone() != 0 {
		t.Errorf("first import: created %d, not done %d; want %d, 0 (%+v)", sum.Created, sum.NotDone(), len(emails), sum.Counts)
	}
	assertServerMatchesLedger(t, fx, emails)

	before := fx.srv.Stats().Requests
	sum, err = fx.importCSV(t, string(data), runOpts{})
	if err != nil {
		t.Fatalf("second import: %v", err)
	}
	if got := fx.srv.Stats().Requests - before; got != 0 {
		t.Errorf("second import sent %d create requests, want 0", got)
	}
	if sum.Skipped != int64(len(emails)) {
		t.Errorf("second import skipped %d, want %d", sum.Skipped, len(emails))
	}
}

func TestImport_LostLedgerMeetsAlreadyExists(t *testing.T) {
	t.Parallel()
	data, emails := genCSV(30, "lost")
	fx := newFixture(t, sandbox.Options{})
	if _, err := fx.importCSV(t, data, runOpts{}); err != nil {
		t.Fatal(err)
	}
	// The operator deletes the ledger: the server still has everyone.
	fx.ledgerPath = filepath.Join(t.TempDir(), "fresh.db")
	sum, err := fx.importCSV(t, data, runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Exists != 30 || sum.Created != 0 {
		t.Errorf("re-import without ledger: exists %d created %d, want 30, 0", sum.Exists, sum.Created)
	}
	assertServerMatchesLedger(t, fx, emails)
}

func TestImport_FaultsEndWithServerAndLedgerAgreeing(t *testing.T) {
	t.Parallel()
	data, emails := genCSV(600, "fault")
	fx := newFixture(t, sandbox.Options{
		FailBeforeCommit: 0.02, FailAfterCommit: 0.02, DropAfterCommit: 0.02, HangAfterCommit: 0.005,
		Latency: time.Millisecond, LatencyJitter: 3 * time.Millisecond, Seed: 42,
	})
	ro := runOpts{timeout: 300 * time.Millisecond, cfg: importer.Config{Concurrency: 16, MaxAttempts: 8}}
	// Each run ends every row; a row may end in_doubt if all its attempts
	// failed, and the next run settles it.
	for run := 1; run <= 3; run++ {
		sum, err := fx.importCSV(t, data, ro)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if sum.NotDone() == 0 {
			break
		}
	}
	st := fx.srv.Stats()
	if st.FailedBeforeCommit == 0 || st.FailedAfterCommit == 0 || st.Dropped == 0 {
		t.Fatalf("faults injected: %+v; want some of each", st)
	}
	assertServerMatchesLedger(t, fx, emails)
	rep := fx.report(t)
	if rep.Counts[row.Created]+rep.Counts[row.Exists] != len(emails) || rep.Rows != len(emails) {
		t.Errorf("report counts %v (rows %d), want all %d created or exists", rep.Counts, rep.Rows, len(emails))
	}
}

func TestImport_WrongCredentialsAbortWithoutFailingRows(t *testing.T) {
	t.Parallel()
	data, _ := genCSV(200, "cred")
	fx := newFixture(t, sandbox.Options{})
	start := time.Now()
	sum, err := fx.importCSV(t, data, runOpts{secret: "wrong-secret"})
	if !errors.Is(err, importer.ErrUnauthorized) {
		t.Fatalf("Import with a wrong secret: err = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("error text %q contains the secret", err)
	}
	if sum.Failed+sum.Rejected+sum.InDoubt != 0 {
		t.Errorf("rows marked failed/rejected/in doubt: %+v, want none", sum.Counts)
	}
	if rows := fx.ledgerRows(t); len(rows) != 0 {
		t.Errorf("ledger holds %d rows after a refused token, want 0 (untouched)", len(rows))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("abort took %v, want quick", d)
	}
	if got := fx.srv.Stats().Requests; got != 0 {
		t.Errorf("server got %d create requests, want 0", got)
	}
	if sum.Requests != 0 {
		t.Errorf("summary counts %d requests, want 0: only the token endpoint was asked", sum.Requests)
	}
}

func TestImport_ShortLivedTokensCauseNoFailedRow(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs ~5s")
	}
	data, emails := genCSV(500, "tok")
	fx := newFixture(t, sandbox.Options{TokenTTL: time.Second})
	// 100/s for 500 rows: five seconds, five token lifetimes.
	sum, err := fx.importCSV(t, data, runOpts{rps: 100})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created != 500 || sum.NotDone() != 0 {
		t.Errorf("import with 1s tokens: %+v, want 500 created", sum.Counts)
	}
	if st := fx.srv.Stats(); st.TokenRequests < 4 || st.Unauthorized > st.TokenRequests {
		t.Errorf("token requests %d, unauthorized %d: want >= 4 fetches and at most one 401 each", st.TokenRequests, st.Unauthorized)
	}
	assertServerMatchesLedger(t, fx, emails)
}

func TestImport_ResumeRules(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{})
	first := "email,type\nana@example.com,INDIVIDUAL\nbeto@example.com,BUSINESS\n"
	if _, err := fx.importCSV(t, first, runOpts{}); err != nil {
		t.Fatal(err)
	}
	// Same keys again, one with another type: a conflict, not sent.
	before := fx.srv.Stats().Requests
	sum, err := fx.importCSV(t, "email,type\nANA@example.com,INDIVIDUAL\nbeto@example.com,INDIVIDUAL\n", runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 1 || sum.Invalid != 1 || fx.srv.Stats().Requests != before {
		t.Errorf("re-import with a changed type: %+v, requests +%d; want 1 skipped, 1 invalid (conflict), 0 requests",
			sum.Counts, fx.srv.Stats().Requests-before)
	}
}

// rejectingProxy answers 400 ValidationError for emails at reject.example,
// a rule of the server's the importer cannot know, and passes the rest to
// the fake server.
func rejectingProxy(t *testing.T, fx *fixture) string {
	t.Helper()
	h := fx.srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "@reject.example") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"code":20000,"type":"ValidationError","detail":{"message":"email: domain not allowed"},"status":400}`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestImport_RejectedRowsSentAgainOnlyWhenChangedOrForced(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{})
	fx.baseURL = rejectingProxy(t, fx)
	data := "email,type\nno@reject.example,INDIVIDUAL\nok@example.com,BUSINESS\n"

	sum, err := fx.importCSV(t, data, runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rejected != 1 || sum.Created != 1 {
		t.Fatalf("first import: %+v, want 1 rejected, 1 created", sum.Counts)
	}
	rows := fx.ledgerRows(t)
	if r := rows["email:no@reject.example"]; r.status != "rejected" || r.attempts != 1 {
		t.Errorf("ledger row of the rejected email = %+v, want rejected after 1 attempt (never retried)", r)
	}

	tests := []struct {
		name          string
		data          string
		retryRejected bool
		wantAttempts  int
	}{
		{"UnchangedIsNotSent", data, false, 1},
		{"ChangedTypeIsSent", "email,type\nno@reject.example,BUSINESS\n", false, 2},
		{"ForcedIsSent", "email,type\nno@reject.example,BUSINESS\n", true, 3},
	}
	for _, tt := range tests { // sequential: each builds on the ledger before it
		sum, err := fx.importCSV(t, tt.data, runOpts{cfg: importer.Config{RetryRejected: tt.retryRejected}})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if sum.Rejected != 1 {
			t.Errorf("%s: %+v, want the row counted rejected", tt.name, sum.Counts)
		}
		if got := fx.ledgerRows(t)["email:no@reject.example"].attempts; got != tt.wantAttempts {
			t.Errorf("%s: attempts = %d, want %d", tt.name, got, tt.wantAttempts)
		}
	}
}

func TestCustomerIDFor_IsStableAcrossReleases(t *testing.T) {
	t.Parallel()
	// Ledgers and servers hold ids derived by older binaries: the derivation
	// must never change.
	tests := []struct{ email, want string }{
		{"ana@example.com", "acb0ffa9-aa89-5967-baed-f895bdd2c431"},
		{"  Ana@Example.COM ", "acb0ffa9-aa89-5967-baed-f895bdd2c431"},
		{"finance@acme.example.com", "4171ec3a-f885-5294-ad03-908e7e066b91"},
	}
	for _, tt := range tests {
		if got := importer.CustomerIDFor(tt.email); got != tt.want {
			t.Errorf("CustomerIDFor(%q) = %s, want %s", tt.email, got, tt.want)
		}
	}
}

// TestImport_SoftStopReleasesRowsMarkedAhead stops a run while most of the
// rows marked in flight ahead of their requests are still waiting for the
// limiter: those go back to unknown, not in_doubt, and a re-run finishes.
func TestImport_SoftStopReleasesRowsMarkedAhead(t *testing.T) {
	t.Parallel()
	data, emails := genCSV(600, "stop")
	fx := newFixture(t, sandbox.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for fx.srv.Stats().Requests < 20 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	sum, err := fx.importCSV(t, data, runOpts{rps: 100, ctx: ctx, cfg: importer.Config{MarkAhead: 256}})
	if err != nil {
		t.Fatalf("stopped import: %v", err)
	}
	if sum.Outcome != "interrupted" || sum.Created == 0 || sum.Created >= 600 {
		t.Fatalf("stopped import: outcome %s, %+v; want interrupted part way", sum.Outcome, sum.Counts)
	}
	rows := fx.ledgerRows(t)
	if int64(len(rows)) != sum.Created {
		t.Errorf("ledger holds %d rows after the stop, want the %d created (the rest released)", len(rows), sum.Created)
	}
	for k, r := range rows {
		if r.status != "created" || r.attempts != 1 {
			t.Errorf("ledger row %s = %+v, want created after 1 attempt", k, r)
		}
	}
	if got := len(fx.srv.Customers()); int64(got) != sum.Created {
		t.Errorf("server holds %d customers, want %d", got, sum.Created)
	}

	sum, err = fx.importCSV(t, data, runOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created+sum.Skipped != 600 || sum.NotDone() != 0 {
		t.Errorf("re-run: %+v, want every row created or skipped", sum.Counts)
	}
	assertServerMatchesLedger(t, fx, emails)
}

// TestImport_SoftStopLeavesUnsentInDoubtRowsAsTheyWere stops a run that
// marked rows left in_doubt by an earlier run but sent only some: the
// others keep their status, attempts and reason, and do not count as this
// run's in_doubt rows.
func TestImport_SoftStopLeavesUnsentInDoubtRowsAsTheyWere(t *testing.T) {
	t.Parallel()
	data, _ := genCSV(40, "doubt")
	fx := newFixture(t, sandbox.Options{FailBeforeCommit: 1})
	fx.opts = sandbox.Options{FailBeforeCommit: 1}
	sum, err := fx.importCSV(t, data, runOpts{cfg: importer.Config{MaxAttempts: 1}})
	if err != nil || sum.InDoubt != 40 {
		t.Fatalf("first run against a server answering 503: %+v, %v; want 40 in_doubt", sum.Counts, err)
	}
	before := fx.ledgerRows(t)

	fx.opts = sandbox.Options{}
	fx.restart(t, 0)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for fx.srv.Stats().Requests < 1 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err = fx.importCSV(t, data, runOpts{rps: 2, ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Outcome != "interrupted" || sum.Created+sum.Exists == 0 || sum.InDoubt != 0 {
		t.Fatalf("stopped run: %s %+v; want interrupted after at least one created and no new in_doubt", sum.Outcome, sum.Counts)
	}
	unsent := 0
	for k, r := range fx.ledgerRows(t) {
		if r.status == "created" {
			continue
		}
		unsent++
		if r != before[k] {
			t.Errorf("row %s after the stop = %+v, want it as the first run left it: %+v", k, r, before[k])
		}
	}
	if want := 40 - int(sum.Created+sum.Exists); unsent != want {
		t.Errorf("%d rows not created after the stop, want %d", unsent, want)
	}
}

// TestImport_ThrottledTokenEndpointPausesWithoutSpendingAttempts puts a
// token endpoint that answers 429 (Retry-After 1) three times in front of
// the fake server: the pool waits, no row spends an attempt on it, and
// every row is created even with one attempt a row.
func TestImport_ThrottledTokenEndpointPausesWithoutSpendingAttempts(t *testing.T) {
	t.Parallel()
	data, emails := genCSV(50, "tok429")
	fx := newFixture(t, sandbox.Options{})
	h := fx.srv.Handler()
	var refused atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/oauth2/token") && refused.Add(1) <= 3 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	fx.baseURL = ts.URL
	start := time.Now()
	sum, err := fx.importCSV(t, data, runOpts{cfg: importer.Config{MaxAttempts: 1, Concurrency: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created != 50 || sum.NotDone() != 0 || sum.Throttled != 0 {
		t.Errorf("import behind a throttled token endpoint: %+v, %d create 429s; want 50 created, none", sum.Counts, sum.Throttled)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("import took %v; want the pool held for the token endpoint's Retry-After (1 s)", d)
	}
	if n := refused.Load(); n > 8 {
		t.Errorf("the token endpoint was asked %d times; want the pool to wait, not every worker to ask", n)
	}
	assertServerMatchesLedger(t, fx, emails)
}

// TestImport_RowsMeetByEmailWhileInDoubt: a customer that may exist (its
// request went out, no answer came) blocks a row of the other kind of key
// with its email as a created one does, in either order.
func TestImport_RowsMeetByEmailWhileInDoubt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, first, second string
	}{
		{"customerId then email", "customerId,email,type\npartner-7,ana@example.com,INDIVIDUAL\n", "email,type\nANA@example.com,INDIVIDUAL\n"},
		{"email then customerId", "email,type\nana@example.com,INDIVIDUAL\n", "customerId,email,type\npartner-7,ANA@example.com,INDIVIDUAL\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Every create is stored and answered 500: the row stays in doubt.
			fx := newFixture(t, sandbox.Options{FailAfterCommit: 1})
			sum, err := fx.importCSV(t, tt.first, runOpts{cfg: importer.Config{MaxAttempts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			if sum.InDoubt != 1 {
				t.Fatalf("first import: %+v; want its row in doubt", sum.Counts)
			}
			sum, err = fx.importCSV(t, tt.second, runOpts{cfg: importer.Config{MaxAttempts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Invalid != 1 || len(fx.srv.Customers()) != 1 {
				t.Errorf("second import: %+v, server holds %d; want a conflict, and the one customer", sum.Counts, len(fx.srv.Customers()))
			}
		})
	}
}

// TestImport_RowsOfBothKindsInOneBatchMeetByEmail: a file with a customerId
// column and some cells of it empty (as a fixed failures file may be) keys
// those rows by email; the same person under both kinds is sent once.
func TestImport_RowsOfBothKindsInOneBatchMeetByEmail(t *testing.T) {
	t.Parallel()
	for name, data := range map[string]string{
		"customerId first": "customerId,email,type\npartner-7,ana@example.com,INDIVIDUAL\n,ANA@example.com,INDIVIDUAL\n",
		"email first":      "customerId,email,type\n,ANA@example.com,INDIVIDUAL\npartner-7,ana@example.com,INDIVIDUAL\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t, sandbox.Options{})
			sum, err := fx.importCSV(t, data, runOpts{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Created != 1 || sum.Invalid != 1 || len(fx.srv.Customers()) != 1 {
				t.Errorf("import: %+v, server holds %d; want 1 created, 1 conflict, 1 customer", sum.Counts, len(fx.srv.Customers()))
			}
		})
	}
}

// TestImport_ConflictReplacesTheRowsRejectedRecord: a row the server
// refused stays rejected while unchanged, and when sent again
// (--retry-rejected) but refused for a conflict with a customer another file
// created, it is one record in the ledger (the conflict), so that the report
// adds up to the files' lines.
func TestImport_ConflictReplacesTheRowsRejectedRecord(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{})
	direct := fx.baseURL
	fx.baseURL = rejectingProxy(t, fx)
	emails := "email,type\nana@reject.example,INDIVIDUAL\n"
	sum, err := fx.importCSV(t, emails, runOpts{cfg: importer.Config{SourceFile: "a.csv"}})
	if err != nil || sum.Rejected != 1 {
		t.Fatalf("first import: %+v, %v; want its row rejected", sum.Counts, err)
	}
	fx.baseURL = direct // the server takes the address after all
	if sum, err := fx.importCSV(t, "customerId,email,type\npartner-7,ANA@reject.example,INDIVIDUAL\n", runOpts{cfg: importer.Config{SourceFile: "b.csv"}}); err != nil || sum.Created != 1 {
		t.Fatalf("import of b.csv: %+v, %v; want 1 created", sum.Counts, err)
	}
	sum, err = fx.importCSV(t, emails, runOpts{cfg: importer.Config{SourceFile: "a.csv"}})
	if err != nil || sum.Rejected != 1 || sum.Invalid != 0 {
		t.Fatalf("a.csv again, unchanged: %+v, %v; want it rejected still", sum.Counts, err)
	}
	sum, err = fx.importCSV(t, emails, runOpts{cfg: importer.Config{SourceFile: "a.csv", RetryRejected: true}})
	if err != nil || sum.Invalid != 1 {
		t.Fatalf("a.csv with RetryRejected: %+v, %v; want a conflict", sum.Counts, err)
	}
	rep := fx.report(t)
	if rep.Rows != 2 || rep.Counts[row.Created] != 1 || rep.Counts[row.Invalid] != 1 || rep.Counts[row.Rejected] != 0 {
		t.Errorf("report: %d rows, %v; want 2 (b.csv's created, a.csv's conflict)", rep.Rows, rep.Counts)
	}
	if n := len(fx.srv.Customers()); n != 1 {
		t.Errorf("server holds %d customers, want 1", n)
	}
}

// TestImport_RowsOfBothKindsMeetByEmailAcrossFiles: a file keyed by a
// customerId column and one keyed by email, in either order, send a person
// once; emails are lower-cased as keys are (Unicode), not as SQLite's
// lower() does (ASCII only).
func TestImport_RowsOfBothKindsMeetByEmailAcrossFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, first, second string
	}{
		{"email, then customerId", "email,type\nana@example.com,INDIVIDUAL\n",
			"customerId,email,type\npartner-7,ANA@example.com,INDIVIDUAL\npartner-8,beto@example.com,BUSINESS\n"},
		{"customerId, then email", "customerId,email,type\npartner-7,Ana@Example.com,INDIVIDUAL\n",
			"email,type\nana@example.com,INDIVIDUAL\nbeto@example.com,BUSINESS\n"},
		{"beyond ASCII", "customerId,email,type\npartner-9,JOSÉ@Example.com,INDIVIDUAL\n",
			"email,type\njosé@example.com,INDIVIDUAL\nbeto@example.com,BUSINESS\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t, sandbox.Options{}) // the fake allows one email under two ids, as Ripio may
			if _, err := fx.importCSV(t, tt.first, runOpts{}); err != nil {
				t.Fatal(err)
			}
			sum, err := fx.importCSV(t, tt.second, runOpts{})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Invalid != 1 || sum.Created != 1 || len(fx.srv.Customers()) != 2 {
				t.Errorf("second import: %+v, server holds %d; want the known person refused as a conflict, 1 created, 2 on the server",
					sum.Counts, len(fx.srv.Customers()))
			}
		})
	}
}

// TestImport_DryRunFindsConflictsAcrossBatches: rows of both kinds of key
// with one email, 300 rows apart (in different planning batches), are
// refused alike by a dry run and by the real run.
func TestImport_DryRunFindsConflictsAcrossBatches(t *testing.T) {
	t.Parallel()
	for name, pair := range map[string][2]string{
		"customerId first": {"partner-1,pair@example.com,INDIVIDUAL\n", ",PAIR@example.com,INDIVIDUAL\n"},
		"email first":      {",PAIR@example.com,INDIVIDUAL\n", "partner-1,pair@example.com,INDIVIDUAL\n"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			b.WriteString("customerId,email,type\n" + pair[0])
			for i := range 300 {
				fmt.Fprintf(&b, "p-%d,u%d@example.com,INDIVIDUAL\n", i, i)
			}
			b.WriteString(pair[1])
			fx := newFixture(t, sandbox.Options{})
			dry, err := fx.importCSV(t, b.String(), runOpts{cfg: importer.Config{DryRun: true}})
			if err != nil {
				t.Fatal(err)
			}
			real, err := fx.importCSV(t, b.String(), runOpts{})
			if err != nil {
				t.Fatal(err)
			}
			if real.Created != 301 || real.Invalid != 1 || dry.Invalid != 1 {
				t.Errorf("dry run: %+v; real run: %+v; want the same 1 conflict, 301 created", dry.Counts, real.Counts)
			}
		})
	}
}

// TestImport_DryRunSaysWhyRowsWouldNotBeSent: a dry run records nothing,
// so its summary carries the reasons of the rows it would not send.
func TestImport_DryRunSaysWhyRowsWouldNotBeSent(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{})
	data := "email,type\nbad,INDIVIDUAL\nok@example.com,INDIVIDUAL\nOK@example.com,INDIVIDUAL\n"
	sum, err := fx.importCSV(t, data, runOpts{cfg: importer.Config{DryRun: true, SourceFile: "f.csv"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Issues) != 2 || !strings.HasPrefix(sum.Issues[0], "f.csv:2: email:") || !strings.HasPrefix(sum.Issues[1], "f.csv:4: ") ||
		!strings.Contains(sum.Issues[1], "repeats line 3") {
		t.Errorf("dry run issues = %q; want line 2's invalid email, then line 4 repeating line 3", sum.Issues)
	}
}

// TestImport_AStoppedRunThatReadItsWholeFileSaysSo: a run stopped after it
// had read its whole file says so (ReadAll), so that its summary does not
// tell the operator that the rest of the file was not read.
func TestImport_AStoppedRunThatReadItsWholeFileSaysSo(t *testing.T) {
	t.Parallel()
	data, _ := genCSV(40, "readall")
	fx := newFixture(t, sandbox.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for fx.srv.Stats().Requests < 1 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err := fx.importCSV(t, data, runOpts{rps: 2, ctx: ctx})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Outcome != "interrupted" || sum.Read != 40 || !sum.ReadAll {
		t.Errorf("stopped run: %s, %d read, read all %v; want interrupted, 40 read, read all", sum.Outcome, sum.Read, sum.ReadAll)
	}
}
