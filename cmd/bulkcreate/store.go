package main

import (
	"context"
	"errors"
	"flag"
	"net/url"
	"strings"
	"sync"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// ledgerEnv names the ledger when --ledger is not given: a file, or a
// postgres:// URL, whose password is better kept out of the command line.
const ledgerEnv = "BULKCREATE_LEDGER"

// defaultLedger is --ledger's default.
const defaultLedger = "bulkcreate.db"

// ledgerLocation is the ledger the command uses: --ledger when given, else
// $BULKCREATE_LEDGER, else the default. fromEnv says it came from the
// environment.
func ledgerLocation(e env, fs *flag.FlagSet, flagValue string) (location string, fromEnv bool) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "ledger" })
	if v := e.getenv(ledgerEnv); !given && v != "" {
		return v, true
	}
	return flagValue, false
}

// isPostgres reports whether location is a PostgreSQL URL rather than a
// file.
func isPostgres(location string) bool {
	return strings.HasPrefix(location, "postgres://") || strings.HasPrefix(location, "postgresql://")
}

// shownLedger is location as the command prints it: without a URL's
// password.
func shownLedger(location string) string {
	if !isPostgres(location) {
		return location
	}
	u, err := url.Parse(location)
	if err != nil {
		return "a PostgreSQL URL that does not parse"
	}
	return u.Redacted()
}

// ledgerHint is what to pass as --ledger in the commands a summary
// suggests: nothing (the default) when the environment named the ledger,
// since the next command reads it there too.
func ledgerHint(location string, fromEnv bool) string {
	if fromEnv {
		return defaultLedger
	}
	return shownLedger(location)
}

// store is a ledger as the commands use it: the importer's Store, and
// report's and failures' reads.
type store interface {
	importer.Store
	Report(ctx context.Context, target string, maxRuns int) (ledger.Report, error)
	Failures(ctx context.Context, target string, statuses []row.Status, fn func(ledger.Failure) error) error
	Close() error
}

// openStore opens the ledger at location: a PostgreSQL database for a
// postgres:// URL, else a SQLite file. It returns ledger.ErrNotFound
// (wrapped) when mustExist and there is none.
func openStore(ctx context.Context, location string, mustExist bool) (store, error) {
	if isPostgres(location) {
		l, err := postgres.Open(ctx, location, postgres.Options{MustExist: mustExist})
		if err != nil {
			return nil, err
		}
		return postgresStore{l}, nil
	}
	l, err := ledger.Open(ctx, location, ledger.Options{MustExist: mustExist})
	if err != nil {
		return nil, err
	}
	return sqliteStore{Store: importer.Ledger(l), l: l}, nil
}

type sqliteStore struct {
	importer.Store
	l *ledger.Ledger
}

func (s sqliteStore) Report(ctx context.Context, target string, maxRuns int) (ledger.Report, error) {
	return s.l.Report(ctx, target, maxRuns)
}

func (s sqliteStore) Failures(ctx context.Context, target string, statuses []row.Status, fn func(ledger.Failure) error) error {
	return s.l.Failures(ctx, target, statuses, fn)
}

func (s sqliteStore) Close() error { return s.l.Close() }

// postgresStore is the PostgreSQL ledger as the importer's Store: its
// StartRun and MarkInFlightCommitted return its own types, which Go does
// not take for the importer's interfaces without these two adapters.
type postgresStore struct{ *postgres.Ledger }

func (s postgresStore) StartRun(ctx context.Context, info ledger.RunInfo) (importer.Run, error) {
	r, err := s.Ledger.StartRun(ctx, info)
	if err != nil {
		return nil, err
	}
	return postgresRun{r}, nil
}

type postgresRun struct{ *postgres.Run }

func (r postgresRun) MarkInFlightCommitted(ctx context.Context, sends []ledger.Send) (importer.Pending, error) {
	p, err := r.Run.MarkInFlightCommitted(ctx, sends)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// postgresWorker is a PostgreSQL ledger's Worker as the importer's.
type postgresWorker struct{ *postgres.Worker }

func (w postgresWorker) MarkInFlightCommitted(ctx context.Context, sends []ledger.Send) (importer.Pending, error) {
	p, err := w.Worker.MarkInFlightCommitted(ctx, sends)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// loadingStore is a PostgreSQL ledger whose StartRun keeps the run it
// started, for the fleet import that waits on it.
type loadingStore struct {
	postgresStore
	ceiling float64 // import --rps: the target's budget, set once the load holds the target
	mu      sync.Mutex
	run     *postgres.Run
}

func (s *loadingStore) StartRun(ctx context.Context, info ledger.RunInfo) (importer.Run, error) {
	r, err := s.Ledger.StartRun(ctx, info)
	if err != nil {
		return nil, err
	}
	if err := s.Ledger.SetCeiling(ctx, info.Target, s.ceiling); err != nil {
		return nil, errors.Join(err, r.Finish(context.WithoutCancel(ctx), ledger.RunEnd{Outcome: "aborted", SourceFile: info.SourceFile}))
	}
	s.mu.Lock()
	s.run = r
	s.mu.Unlock()
	return postgresRun{r}, nil
}

// started is the run StartRun started; nil before.
func (s *loadingStore) started() *postgres.Run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.run
}
