package importer_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// closedURL is a loopback URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// statuses counts the ledger's keyed rows by status.
func (fx *fixture) statuses(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range fx.ledgerRows(t) {
		out[r.status]++
	}
	return out
}

// TestImport_UnreachableServerAbortsAndLeavesRowsAsTheyWere: nothing
// answers, so the run ends with ErrUnreachable naming where it was pointed,
// no row is marked failed, and the next run against a server that answers
// creates every row once.
func TestImport_UnreachableServerAbortsAndLeavesRowsAsTheyWere(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{})
	down := closedURL(t)
	fx.baseURL = down
	data, emails := genCSV(300, "unreach")
	sum, err := fx.importCSV(t, data, runOpts{cfg: importer.Config{Stop: importer.StopConfig{UnreachableAfter: 500 * time.Millisecond}}})
	if !errors.Is(err, importer.ErrUnreachable) {
		t.Fatalf("Import against %s = %v, want ErrUnreachable", down, err)
	}
	if host := strings.TrimPrefix(down, "http://"); !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q does not name the cause and %s", err, host)
	}
	if sum.Failed != 0 || sum.InDoubt != 0 || sum.Outcome != "aborted" {
		t.Errorf("summary: failed %d, in doubt %d, outcome %s; want 0, 0, aborted", sum.Failed, sum.InDoubt, sum.Outcome)
	}
	if got := fx.statuses(t); got["failed"]+got["in_doubt"]+got["in_flight"] != 0 {
		t.Errorf("ledger after the abort = %v, want no failed, in doubt or in flight row", got)
	}

	fx.baseURL = fx.srv.URL()
	sum, err = fx.importCSV(t, data, runOpts{})
	if err != nil || sum.Created != int64(len(emails)) {
		t.Fatalf("re-run against a server that answers: created %d, %v; want %d, nil", sum.Created, err, len(emails))
	}
	if n := len(fx.srv.Customers()); n != len(emails) {
		t.Errorf("server holds %d customers, want %d", n, len(emails))
	}
}

// TestImport_ServerFailingEveryRequestOpensTheBreaker: a 503 to every
// create ends the run with the dominant cause instead of grinding through
// every row; rows tried are in doubt (a 5xx may have committed), and a
// re-run against a healthy server creates each person once.
func TestImport_ServerFailingEveryRequestOpensTheBreaker(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{FailBeforeCommit: 1})
	data, emails := genCSV(2000, "breaker")
	sum, err := fx.importCSV(t, data, runOpts{cfg: importer.Config{Concurrency: 8, Stop: importer.StopConfig{BreakerRequests: 40}}})
	if !errors.Is(err, importer.ErrServerFailing) {
		t.Fatalf("Import against a 503-only server = %v, want ErrServerFailing", err)
	}
	if !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("error %q does not name the dominant cause", err)
	}
	if sum.Failed != 0 || sum.InDoubt == 0 || sum.Done()+sum.NotDone() >= int64(len(emails)) {
		t.Errorf("summary: %+v; want some in doubt, none failed, most rows not started", sum.Counts)
	}

	healthy, err := sandbox.NewServer(sandbox.Options{DBPath: ""})
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Close()
	fx.srv.Close()
	fx2 := &fixture{srv: healthy, baseURL: healthy.URL(), ledgerPath: fx.ledgerPath, target: fx.target}
	if sum, err = fx2.importCSV(t, data, runOpts{rps: 2000}); err != nil || sum.Done() != int64(len(emails)) {
		t.Fatalf("re-run against a healthy server: done %d, %v; want %d, nil", sum.Done(), err, len(emails))
	}
}

// TestImport_YearLongRetryAfterAbortsAtOnce: a server asking to wait a
// year ends the run at its first answer, naming the wait.
func TestImport_YearLongRetryAfterAbortsAtOnce(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{ThrottleAll: 365 * 24 * time.Hour})
	data, _ := genCSV(100, "year")
	sum, err := fx.importCSV(t, data, runOpts{})
	if !errors.Is(err, importer.ErrThrottledTooLong) {
		t.Fatalf("Import against a server throttling for a year = %v, want ErrThrottledTooLong", err)
	}
	if !strings.Contains(err.Error(), "8760h") {
		t.Errorf("error %q does not name the server's Retry-After", err)
	}
	if sum.Failed+sum.InDoubt != 0 {
		t.Errorf("summary: %+v; want no row failed or in doubt (a 429 did nothing)", sum.Counts)
	}
	if got := fx.statuses(t); got["failed"]+got["in_doubt"]+got["in_flight"] != 0 {
		t.Errorf("ledger after the abort = %v, want no failed, in doubt or in flight row", got)
	}
}

// TestImport_MaxErrorsCountsRowsInDoubt: a server that fails every create
// after maybe committing it leaves rows in doubt, and --max-errors stops
// the run on them as on failed ones.
func TestImport_MaxErrorsCountsRowsInDoubt(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{FailBeforeCommit: 1})
	data, _ := genCSV(500, "maxerr")
	noBreaker := importer.StopConfig{BreakerRequests: -1, BreakerWindow: -1}
	sum, err := fx.importCSV(t, data, runOpts{cfg: importer.Config{MaxAttempts: 1, MaxErrors: 10, Concurrency: 4, Stop: noBreaker}})
	if !errors.Is(err, importer.ErrTooManyErrors) {
		t.Fatalf("Import with --max-errors 10 against a 503-only server = %v, want ErrTooManyErrors", err)
	}
	if sum.InDoubt < 10 || sum.InDoubt > 10+4 {
		t.Errorf("in doubt = %d, want 10 (and at most the pool's other rows in flight)", sum.InDoubt)
	}
}

// TestImport_WrongBaseURLIsNotACredentialsProblem: a token endpoint that
// answers 404 HTML aborts the run saying the base URL is wrong.
func TestImport_WrongBaseURLIsNotACredentialsProblem(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{TokenNotFound: true})
	data, _ := genCSV(20, "wrongurl")
	_, err := fx.importCSV(t, data, runOpts{})
	if !errors.Is(err, importer.ErrWrongBaseURL) || errors.Is(err, importer.ErrUnauthorized) {
		t.Fatalf("Import against a 404 token endpoint = %v, want ErrWrongBaseURL and not ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "refused the credentials") {
		t.Errorf("error %q blames the credentials", err)
	}
}

// TestImport_AServerAnsweringAPageToEveryCreateOpensTheBreaker: a proxy's
// 200 maintenance page to every create is no more a working server than a
// 503: the run ends, naming it, instead of leaving every row in doubt.
func TestImport_AServerAnsweringAPageToEveryCreateOpensTheBreaker(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sandbox.Options{CreateHTML200: true})
	data, emails := genCSV(600, "page")
	sum, err := fx.importCSV(t, data, runOpts{cfg: importer.Config{Concurrency: 8, Stop: importer.StopConfig{BreakerRequests: 40}}})
	if !errors.Is(err, importer.ErrServerFailing) {
		t.Fatalf("Import against a server answering 200 HTML = %v (%+v), want ErrServerFailing", err, sum.Counts)
	}
	if !strings.Contains(err.Error(), "200 answers that are not the create answer") {
		t.Errorf("error %q does not name the dominant answer", err)
	}
	if sum.InDoubt >= int64(len(emails)) {
		t.Errorf("in doubt = %d: every row was tried, want the run stopped early", sum.InDoubt)
	}
}
