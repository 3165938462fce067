package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime/debug"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// importJob is one import, wired: what runImport's steps build and the
// run uses. close releases what the wiring opened, last opened first.
type importJob struct {
	f      *importFlags
	cfg    importer.Config
	logger *slog.Logger
	tgt    target
	path   string // the FILE argument; "-" for stdin

	in      io.Reader
	input   *inputFile // nil for stdin
	ledger  store
	sqlite  *ledger.Ledger // the SQLite ledger, for the run report's series; nil on PostgreSQL
	client  *ripio.Client
	pacer   importer.Pacer
	mx      *importMetrics
	closers []func() error
}

// job checks the command line beyond its flags' syntax and resolves the
// target: a usage error here means nothing was opened.
func (f *importFlags) job(e env, posArgs []string, rec *summaryRecorder) (*importJob, error) {
	if len(posArgs) != 1 {
		return nil, usageError("import: want one FILE (or - for stdin), got %d; try: bulkcreate import samples/customers.csv", len(posArgs))
	}
	cfg, err := f.importerConfig()
	if err != nil {
		return nil, usageError("import: %v", err)
	}
	logger, err := newLogger(e.stderr, f.logFormat, f.verbose, f.quiet)
	if err != nil {
		return nil, usageError("import: %v", err)
	}
	cfg.Logger = logger
	rec.file = posArgs[0]
	tgt, err := f.target.resolve(e, !f.dryRun)
	if err != nil {
		return nil, usageError("import: %v", err)
	}
	rec.target = tgt.Name()
	mx, err := f.metrics.start(e.stderr)
	if err != nil {
		return nil, usageError("import: %v", err)
	}
	cfg.Observe = mx.observer()
	return &importJob{f: f, cfg: cfg, logger: logger, tgt: tgt, path: posArgs[0], mx: mx,
		closers: []func() error{func() error { mx.close(); return nil }}}, nil
}

func (j *importJob) close() {
	for i := len(j.closers) - 1; i >= 0; i-- {
		j.closers[i]()
	}
}

// wire opens the input and the ledger and connects the client, in that
// order: a file that cannot be read creates no ledger.
func (j *importJob) wire(ctx context.Context, e env) error {
	if e.getenv("GOGC") == "" {
		// The heap is mostly the duplicate detector's flat slices, which
		// the collector need not scan: collecting at 1.5x the live heap
		// instead of 2x keeps a million-row import's memory low, and costs
		// less CPU than a lower setting (BENCHMARKS.md, figures 4 and 5).
		debug.SetGCPercent(50)
	}
	if err := j.openInput(e); err != nil {
		return err
	}
	if err := j.openLedger(ctx); err != nil {
		return err
	}
	if j.f.dryRun {
		return nil
	}
	return j.connect(ctx, e)
}

// openInput opens FILE, or takes stdin for "-", and names it as the ledger
// will: an absolute path, or <stdin>.
func (j *importJob) openInput(e env) error {
	j.in, j.cfg.SourceFile = e.stdin, "<stdin>"
	if j.path == "-" {
		return nil
	}
	file, err := openInput(j.path)
	if err != nil {
		return usageError("import: %v", err)
	}
	j.closers = append(j.closers, file.Close)
	j.in, j.input = file, file
	if abs, err := filepath.Abs(j.path); err == nil {
		j.cfg.SourceFile = abs
	}
	return nil
}

// openLedger opens the ledger; a dry run writes nothing, not even a new
// ledger file, and plans against nothing when there is none.
func (j *importJob) openLedger(ctx context.Context) error {
	l, err := openStore(ctx, j.f.ledger, j.f.dryRun)
	switch {
	case j.f.dryRun && errors.Is(err, ledger.ErrNotFound):
		return nil
	case err != nil:
		return withCode(exitUsage, err)
	}
	j.ledger = l
	if s, ok := l.(sqliteStore); ok {
		j.sqlite = s.l
	}
	j.closers = append(j.closers, l.Close)
	return nil
}

// connect starts the embedded sandbox when no target is set, says where
// customers go when that is production, and builds the client and the
// pacer: on a PostgreSQL ledger, the target's budget shared by every
// process, whose ceiling --rps sets.
func (j *importJob) connect(ctx context.Context, e env) error {
	if j.tgt.Embedded {
		beside := j.f.ledger
		if isPostgres(beside) {
			beside = defaultLedger // no file to keep it beside: the working directory
		}
		srv, err := startEmbedded(beside)
		if err != nil {
			return withCode(exitUsage, err)
		}
		j.closers = append(j.closers, srv.Close)
		j.tgt.BaseURL, j.tgt.ClientID, j.tgt.ClientSecret = srv.URL(), srv.ClientID(), srv.ClientSecret()
		fmt.Fprintln(e.stderr, "no RIPIO_BASE_URL: using the embedded sandbox; nothing leaves this machine")
	} else if j.tgt.Production() {
		fmt.Fprintf(e.stderr, "PRODUCTION: creating real Ripio customers at %s as client %s\n", j.tgt.BaseURL, j.tgt.ClientID)
	}
	client, err := ripio.New(ripio.Config{
		BaseURL: j.tgt.BaseURL, ClientID: j.tgt.ClientID, ClientSecret: j.tgt.ClientSecret,
		Timeout: j.f.timeout, UserAgent: "bulkcreate/" + version, WrapTransport: j.mx.wrapTransport(),
	})
	if err != nil {
		return usageError("import: %v", err)
	}
	j.client = client
	// On a PostgreSQL ledger the pool sending beside the fleet takes the
	// target's budget instead (runFleet); a dry run sends nothing.
	j.pacer = ratelimit.New(ratelimit.Config{Rate: j.f.rps, Burst: j.f.burst})
	return nil
}

// run imports, with the run report's sampler and the progress display
// beside it, prints the summary and returns the run's exit code.
func (j *importJob) run(ctx context.Context, e env, rec *summaryRecorder) error {
	if pg, ok := j.ledger.(postgresStore); ok && !j.f.dryRun {
		return j.runFleet(ctx, e, rec, pg)
	}
	name := j.tgt.Name()
	var st importer.Store
	if j.ledger != nil {
		st = j.ledger
	}
	im := importer.New(j.cfg, j.client, j.pacer, st, name)
	smp := startSampler(ctx, e, j.sqlite, im, name, j.logger) // nil in a dry run and on PostgreSQL
	j.mx.watch(im, j.inputSize())
	prog := j.startProgress(e, im)
	sum, err := im.Import(ctx, j.in)
	smp.stop()
	prog.stop()

	rec.sum = &sum
	if j.input != nil {
		rec.inputChanged = j.input.Changed()
	}
	if !j.f.dryRun {
		rec.run = lastRun(ctx, j.sqlite, name, j.cfg.SourceFile, rec.started)
	}
	if !noSummary(err) {
		printSummary(e.stdout, sum, j.f.rps, j.tgt, ledgerHint(j.f.ledger, j.f.ledgerFromEnv), err)
		printInputChanged(e.stdout, rec.inputChanged)
		printReasons(e.stdout, rec.run.Reasons)
	}
	exit := importExit(ctx, sum, err)
	if exit == nil && rec.inputChanged != "" {
		exit = withCode(exitNotDone, errQuiet)
	}
	return exit
}

// inputSize is the size of FILE in bytes; -1 for stdin.
func (j *importJob) inputSize() int64 {
	if j.input == nil {
		return -1
	}
	return j.input.Size()
}

// startProgress starts the progress display of src: a bar on a terminal,
// else a log line every --progress-every; nil with --quiet.
func (j *importJob) startProgress(e env, src progressSource) *progress {
	if j.f.quiet {
		return nil
	}
	p := &progress{im: src, size: j.inputSize(), logger: j.logger, w: e.stderr, tty: isTerminal(e.stderr), interval: j.f.progressEvery}
	p.start()
	return p
}

// noSummary reports whether a run that ended with err read nothing, and so
// has no summary to print.
func noSummary(err error) bool {
	var headerErr *importer.HeaderError
	return errors.As(err, &headerErr) || errors.Is(err, ledger.ErrBusy)
}

// importExit maps a run's end to the documented exit code.
func importExit(ctx context.Context, sum importer.Summary, err error) error {
	var he *importer.HeaderError
	switch {
	case errors.As(err, &he), errors.Is(err, ledger.ErrBusy), errors.Is(err, ledger.ErrNotLedger), errors.Is(err, ledger.ErrNewerSchema):
		return withCode(exitUsage, err)
	case err != nil:
		return withCode(exitAborted, err)
	case ctx.Err() != nil:
		return withCode(exitInterrupted, errors.New("interrupted; run the same command again to finish"))
	case sum.DryRun:
		// A plan: only rows the file must fix make it fail, not rows
		// earlier runs left rejected or in doubt.
		if sum.Invalid+sum.Duplicate > 0 {
			return withCode(exitNotDone, errQuiet)
		}
	case sum.NotDone() > 0:
		return withCode(exitNotDone, errQuiet)
	}
	return nil
}

func achievedRate(sum importer.Summary) float64 {
	if sum.Elapsed <= 0 {
		return 0
	}
	return float64(sum.Requests) / sum.Elapsed.Seconds()
}
