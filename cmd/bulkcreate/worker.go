package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

const workerUsage = `Usage: bulkcreate worker --ledger postgres://... [flags]

Sends the rows that imports on a PostgreSQL ledger queued (bulkcreate import
--ledger postgres://... FILE, with or without --detach) for the target the
environment selects (RIPIO_BASE_URL, RIPIO_CLIENT_ID and the client secret,
as for import). Run any number, on any number of machines: each claims
chunks of rows by lease, and a dead worker's rows are sent again by others
once its lease runs out. Each worker fetches its own token; no secret goes
into the ledger.

Examples:
  BULKCREATE_LEDGER=postgres://bulk@db/imports RIPIO_BASE_URL=sandbox \
    RIPIO_CLIENT_ID=my-id RIPIO_CLIENT_SECRET_FILE=secret.txt bulkcreate worker
  bulkcreate worker --ledger postgres://bulk@db/imports --exit-when-idle
  bulkcreate worker --metrics-addr 127.0.0.1:9464    # Prometheus, as for import

Exit codes are import's: 0 when every row this worker took was created or
already existed, 1 when some were not, 3 when it stopped for a reason that
stops every row (credentials, a lost lease, the ledger) or, with
--exit-when-idle, when the ledger holds no import of its target at all,
130 on a signal. A worker whose target has no import says so on stderr,
naming the targets that have; without --exit-when-idle it waits for one.
An import's --max-errors, once its rows reach it, stops that import: the
worker puts that import's rows it has not sent back, and goes on with
others.

Flags:
`

type workerFlags struct {
	ledger      string
	exitIdle    bool
	lease       time.Duration
	rps         float64
	concurrency int
	maxAttempts int
	timeout     time.Duration
	resend      bool
	quiet       bool
	logFormat   string
	verbose     bool
	target      targetFlags
	metrics     metricsFlags
}

func (f *workerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.ledger, "ledger", "", "the PostgreSQL ledger: a postgres:// URL (default $"+ledgerEnv+")")
	fs.BoolVar(&f.exitIdle, "exit-when-idle", false, "exit once no import of the target has rows left to send; exit 3 at once when the ledger holds no import of the target at all (a mistyped RIPIO_BASE_URL, RIPIO_CLIENT_ID or --ledger, or a worker started before its import: a Job retries it)")
	fs.DurationVar(&f.lease, "lease", postgres.DefaultLease, "the longest a dead worker's rows wait before another process takes them: a claim of a chunk holds that long, less the claimers' poll (lease/20, 1s at most), without a heartbeat (which renews it every third of it)")
	fs.Float64Var(&f.rps, "rps", 0, "most create requests per second of this worker (0: no limit of its own)")
	fs.IntVar(&f.concurrency, "concurrency", 0, "most requests out at once (default: enough to reach the target's budget, or --rps if lower, at 100ms a call)")
	fs.IntVar(&f.maxAttempts, "max-attempts", 5, "requests per row for errors that may pass (429s not counted)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "time limit of one request")
	fs.BoolVar(&f.resend, "resend-in-doubt", false, "send again rows in doubt at a target that assigns its own customer ids")
	fs.BoolVar(&f.quiet, "quiet", false, "only warnings and the summary")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.BoolVar(&f.verbose, "verbose", false, "debug logs (they name emails)")
	f.target.register(fs)
	f.metrics.register(fs)
}

// check refuses what the flags cannot mean.
func (f *workerFlags) check() error {
	switch {
	case !isPostgres(f.ledger):
		return errors.New("--ledger: want a postgres:// URL (or set " + ledgerEnv + "): workers share a PostgreSQL ledger")
	case f.lease < minLease:
		return fmt.Errorf("--lease %v: want %v or more", f.lease, minLease)
	case f.rps < 0 || math.IsNaN(f.rps) || math.IsInf(f.rps, 0):
		return fmt.Errorf("--rps %v: want 0 (no limit) or more", f.rps)
	case f.concurrency < 0 || f.concurrency > 1024:
		return fmt.Errorf("--concurrency %d: want 1 to 1024", f.concurrency)
	case f.maxAttempts < 1:
		return fmt.Errorf("--max-attempts %d: want 1 or more", f.maxAttempts)
	case f.timeout <= 0:
		return fmt.Errorf("--timeout %v: want more than 0", f.timeout)
	}
	return nil
}

// runWorker claims and sends queued rows until told to stop, or, with
// --exit-when-idle, until none is left.
func runWorker(ctx context.Context, e env, args []string) error {
	var f workerFlags
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	f.register(fs)
	posArgs, helped, err := parseArgs(e, fs, workerUsage, args)
	if helped || err != nil {
		return err
	}
	if len(posArgs) != 0 {
		return usageError("worker: unexpected argument %q; try: bulkcreate worker --ledger postgres://host/db", posArgs[0])
	}
	f.ledger, _ = ledgerLocation(e, fs, f.ledger)
	if err := f.check(); err != nil {
		return usageError("worker: %v", err)
	}
	logger, err := newLogger(e.stderr, f.logFormat, f.verbose, f.quiet)
	if err != nil {
		return usageError("worker: %v", err)
	}
	tgt, err := f.target.resolve(e, true)
	if err != nil {
		return usageError("worker: %v", err)
	}
	if tgt.Embedded {
		return usageError("worker: set RIPIO_BASE_URL (and RIPIO_CLIENT_ID, the secret): a worker sends to the API its imports' target names, never to an embedded sandbox")
	}
	mx, err := f.metrics.start(e.stderr)
	if err != nil {
		return usageError("worker: %v", err)
	}
	defer mx.close()
	l, err := postgres.Open(ctx, f.ledger, postgres.Options{})
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer l.Close()
	if err := f.checkTarget(ctx, l, tgt.Name(), logger); err != nil {
		return err
	}
	err = f.work(ctx, e, l, tgt, logger, mx)
	mx.end(ctx)
	return err
}

// work registers the worker and sends its target's queued rows with a
// pool of its own, then prints what it did and returns its exit.
func (f *workerFlags) work(ctx context.Context, e env, l *postgres.Ledger, tgt target, logger *slog.Logger, mx *importMetrics) error {
	client, err := ripio.New(ripio.Config{BaseURL: tgt.BaseURL, ClientID: tgt.ClientID, ClientSecret: tgt.ClientSecret,
		Timeout: f.timeout, UserAgent: "bulkcreate/" + version, WrapTransport: mx.wrapTransport()})
	if err != nil {
		return usageError("worker: %v", err)
	}
	pacer, rps, err := fleetPacer(ctx, l, tgt.Name(), f.rps)
	if err != nil {
		return withCode(exitAborted, err)
	}
	// Sized for the budget as the worker starts: the pool and a batch of
	// marks are the most rows a killed worker leaves in doubt.
	cfg := importer.Config{Concurrency: f.concurrency, MarkAhead: markAhead(rps), MaxAttempts: f.maxAttempts, ResendInDoubt: f.resend, Logger: logger,
		Observe: mx.observer()}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = defaultConcurrency(rps)
	}
	im := importer.New(cfg, client, pacer, postgresStore{l}, tgt.Name())
	mx.watch(im, -1)
	w, err := l.StartWorker(ctx, tgt.Name(), leaseOptions(f.lease, workerStats(im)))
	if err != nil {
		return withCode(exitAborted, err)
	}
	logger.Info("worker started", "worker", w.ID, "target", tgt.Name(), "ledger", shownLedger(f.ledger), "lease", f.lease)
	wc := importer.WorkConfig{Poll: pollEvery(f.lease)}
	if f.exitIdle {
		wc.Done = func(ctx context.Context) (bool, error) { return w.Idle(ctx, 0) }
	}
	sum, err := im.Work(ctx, postgresWorker{w}, wc)
	printWorkerSummary(e.stdout, w.ID, tgt, sum, err)
	return importExit(ctx, sum, err)
}

// maxOtherTargets is the most targets a worker whose own target has no
// import names of those that have.
const maxOtherTargets = 3

// checkTarget tells the operator of a worker whose target the ledger holds
// no import of: a mistyped RIPIO_BASE_URL or RIPIO_CLIENT_ID, or a --ledger
// of another database or schema, would otherwise find nothing to do and,
// with --exit-when-idle, end at once as if its work were done. With
// --exit-when-idle that is exit 3, not 2: a Job whose workers start before
// their import has queued anything retries them, instead of failing for
// good. Without it the worker warns once and waits for an import. It reads
// the ledger before the worker registers, so a target with no import is
// not added to it for the asking.
func (f *workerFlags) checkTarget(ctx context.Context, l *postgres.Ledger, target string, logger *slog.Logger) error {
	names, err := l.ImportTargets(ctx)
	if err != nil {
		return withCode(exitAborted, err)
	}
	if slices.Contains(names, target) {
		return nil
	}
	if f.exitIdle {
		return withCode(exitAborted, fmt.Errorf("worker: the ledger %s holds no import for target %q; %s",
			shownLedger(f.ledger), target, importsElsewhere(names)))
	}
	logger.Warn("the ledger holds no import for target yet; waiting for one", "target", target,
		"ledger", shownLedger(f.ledger), "hint", importsElsewhere(names))
	return nil
}

// importsElsewhere names the targets of names, the ledger's targets with
// an import, for a worker whose own target is not among them.
func importsElsewhere(names []string) string {
	if len(names) == 0 {
		return "it holds no import at all: queue one with bulkcreate import --detach FILE, or check --ledger"
	}
	var b strings.Builder
	b.WriteString("it holds imports for ")
	for i, n := range names[:min(len(names), maxOtherTargets)] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", n)
	}
	if more := len(names) - maxOtherTargets; more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	b.WriteString(": check RIPIO_BASE_URL, RIPIO_CLIENT_ID and --ledger")
	return b.String()
}

// printWorkerSummary writes what this worker did.
func printWorkerSummary(w io.Writer, id int64, tgt target, s importer.Summary, cause error) {
	fmt.Fprintf(w, "%s: worker %d %s in %s: %d rows taken, %d created, %d exists, %d rejected, %d failed, %d in doubt, %d put back; requests %d (%d throttled)\n",
		tgt.Name(), id, s.Outcome, s.Elapsed.Round(time.Millisecond), s.Read, s.Created, s.Exists, s.Rejected, s.Failed, s.InDoubt,
		s.Read-s.Created-s.Exists-s.Rejected-s.Failed-s.InDoubt, s.Requests, s.Throttled)
	if cause != nil {
		fmt.Fprintf(w, "stopped by: %v\n", cause)
	}
}
