package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
)

const importUsage = `Usage: bulkcreate import [flags] FILE|-

Creates a Ripio customer for every row of FILE (a CSV with columns email and
type, optionally customerId; header names in any case and order, extra
columns ignored). Every outcome goes to the ledger; a re-run skips rows done,
retries rows failed or in doubt, and never creates a customer twice.

With no RIPIO_BASE_URL in the environment, rows go to an embedded sandbox
on this machine. See "bulkcreate --help" for the target's environment.

Examples:
  bulkcreate import samples/customers.csv
  bulkcreate import --dry-run big.csv
  RIPIO_BASE_URL=sandbox RIPIO_CLIENT_ID=my-id RIPIO_CLIENT_SECRET_FILE=secret.txt \
    bulkcreate import --rps 50 --ledger ripio-sandbox.db customers.csv

On a PostgreSQL ledger (--ledger postgres://...), import queues the rows to
send in the ledger and sends them with its own pool beside any workers
(bulkcreate worker), on this machine or others, ending when every row has
ended; --detach returns once the rows are queued, leaving them to workers:
  bulkcreate import --ledger postgres://bulk@db/imports --detach big.csv

Flags:
`

type importFlags struct {
	ledger        string
	ledgerFromEnv bool // --ledger not given: $BULKCREATE_LEDGER named it
	rps           float64
	burst         int
	concurrency   int
	maxAttempts   int
	timeout       time.Duration
	maxErrors     string
	// unreachableAfter and maxRetryAfter: importer.StopConfig's rules.
	unreachableAfter, maxRetryAfter time.Duration
	retryRejected                   bool
	resendInDoubt                   bool
	markExisting                    bool
	delimiter                       string
	columns                         map[string]string
	maxLineBytes                    int
	dryRun                          bool
	quiet                           bool
	logFormat                       string
	verbose                         bool
	summaryJSON                     string
	progressEvery                   time.Duration
	detach                          bool          // fleet: return once the rows are queued
	lease                           time.Duration // fleet: a chunk's lease
	target                          targetFlags
	metrics                         metricsFlags
}

// register adds import's flags to fs, one statement a flag; checks that
// need more than one flag go to importerConfig.
func (f *importFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.ledger, "ledger", defaultLedger, "the ledger: a SQLite `file` or a postgres:// URL (default $"+ledgerEnv+" if set)")
	fs.Float64Var(&f.rps, "rps", 20, "most create requests per second, for the whole pool (0: no client-side limit)")
	fs.IntVar(&f.burst, "burst", 1, "requests that may leave at once after idle time")
	fs.IntVar(&f.concurrency, "concurrency", 0, "most requests out at once (default: enough to reach --rps at 100ms a call)")
	fs.IntVar(&f.maxAttempts, "max-attempts", 5, "requests per row per run for errors that may pass (429s not counted)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "time limit of one request")
	fs.StringVar(&f.maxErrors, "max-errors", "", "abort when this many rows (N) or this share of rows sent (N%) end rejected, failed or in doubt (on a PostgreSQL ledger: the import's rows, whichever process sent them)")
	fs.DurationVar(&f.unreachableAfter, "unreachable-after", 30*time.Second, "abort when no request has reached the API this long after the first left (0: never)")
	fs.DurationVar(&f.maxRetryAfter, "max-retry-after", 10*time.Minute, "abort when the server asks to wait longer than this, or throttles every request for this long (0: never)")
	fs.BoolVar(&f.retryRejected, "retry-rejected", false, "send again rows the server rejected even when unchanged")
	fs.BoolVar(&f.resendInDoubt, "resend-in-doubt", false, "send again rows in doubt at a target that assigns its own customer ids (check them in Ripio first: a second send may create a second customer)")
	fs.BoolVar(&f.markExisting, "mark-existing", false, "record the rows of FILE that are in doubt as existing, and send nothing: for rows you found in Ripio (bulkcreate failures lists them)")
	fs.StringVar(&f.delimiter, "delimiter", "", "field separator: a character, or tab / semicolon / comma / pipe (default: the file's \"sep=\" line, else detected from the header)")
	fs.Func("map", "take columns of other names as ours: `our=theirs,...`, e.g. email=\"E-mail Address\",type=Kind (ours: email, type, customerId)",
		func(s string) error { return parseColumnMap(s, &f.columns) })
	fs.IntVar(&f.maxLineBytes, "max-line-bytes", importer.DefaultMaxLineBytes, "longest row (a line, and so the header and any field) in bytes; a longer one is skipped and reported invalid")
	fs.BoolVar(&f.dryRun, "dry-run", false, "read and validate the file against the ledger and print the plan; send nothing")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress, only warnings and the summary")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.BoolVar(&f.verbose, "verbose", false, "debug logs (they name emails)")
	fs.DurationVar(&f.progressEvery, "progress-every", 5*time.Second, "when stderr is not a terminal, log progress this often (at least 100ms)")
	fs.StringVar(&f.summaryJSON, "summary-json", "", "also write the summary as JSON to this `file`, replaced whole, also when the run fails early (see the README)")
	fs.BoolVar(&f.detach, "detach", false, "PostgreSQL ledger: return once the rows are queued, leaving them to workers (bulkcreate worker)")
	fs.DurationVar(&f.lease, "lease", postgres.DefaultLease, "PostgreSQL ledger: the longest a dead process's rows wait before another process takes them (a claim of a chunk holds that long, less the claimers' poll, without a heartbeat)")
	f.target.register(fs)
	f.metrics.register(fs)
}

// runImport parses the command line, wires the import's parts (input,
// ledger, client), runs it and maps its end to an exit code. The summary
// JSON, when asked for, is written however it ends.
func runImport(ctx context.Context, e env, args []string) (err error) {
	rec := &summaryRecorder{stderr: e.stderr, started: time.Now()}
	var f importFlags
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	f.register(fs)
	posArgs, helped, err := parseArgs(e, fs, importUsage, args)
	if helped {
		return nil
	}
	f.ledger, f.ledgerFromEnv = ledgerLocation(e, fs, f.ledger)
	if serr := rec.start(f.summaryJSON, shownLedger(f.ledger)); serr != nil {
		if err != nil {
			return err
		}
		return usageError("import: %v", serr)
	}
	defer func() { err = rec.write(err) }()
	if err != nil { // a bad flag after --summary-json still gets its summary
		return err
	}
	job, err := f.job(e, posArgs, rec)
	if err != nil {
		return err
	}
	defer job.close()
	if err := job.wire(ctx, e); err != nil {
		return err
	}
	err = job.run(ctx, e, rec)
	// The summary JSON first: a scheduler reads it while the metrics
	// endpoint lingers for its last scrape. A signal that ends the linger
	// is no interruption: the exit is decided.
	err = rec.write(err)
	rec.path = "" // written
	job.mx.end(ctx)
	return err
}

// offIfZero maps a flag's 0 ("never") to the importer's -1 (rule off),
// whose own 0 means its default.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func (f *importFlags) importerConfig() (importer.Config, error) {
	cfg := importer.Config{
		Concurrency:   f.concurrency,
		MaxAttempts:   f.maxAttempts,
		RetryRejected: f.retryRejected,
		ResendInDoubt: f.resendInDoubt,
		MarkExisting:  f.markExisting,
		DryRun:        f.dryRun,
	}
	switch {
	case f.rps < 0 || math.IsNaN(f.rps) || math.IsInf(f.rps, 0):
		return cfg, fmt.Errorf("--rps %v: want 0 (no limit) or more", f.rps)
	case f.burst < 1:
		return cfg, fmt.Errorf("--burst %d: want 1 or more", f.burst)
	case f.concurrency < 0 || f.concurrency > 1024:
		return cfg, fmt.Errorf("--concurrency %d: want 1 to 1024", f.concurrency)
	case f.maxAttempts < 1:
		return cfg, fmt.Errorf("--max-attempts %d: want 1 or more", f.maxAttempts)
	case f.timeout <= 0:
		return cfg, fmt.Errorf("--timeout %v: want more than 0", f.timeout)
	case f.progressEvery < minProgressEvery:
		return cfg, fmt.Errorf("--progress-every %v: want %v or more", f.progressEvery, minProgressEvery)
	case strings.TrimSpace(f.ledger) == "":
		return cfg, errors.New("--ledger: want a file name, such as bulkcreate.db")
	case f.maxLineBytes < 64:
		return cfg, fmt.Errorf("--max-line-bytes %d: want 64 or more", f.maxLineBytes)
	case f.unreachableAfter < 0:
		return cfg, fmt.Errorf("--unreachable-after %v: want 0 (never) or more", f.unreachableAfter)
	case f.markExisting && (f.dryRun || f.resendInDoubt || f.detach):
		return cfg, errors.New("--mark-existing sends nothing: it goes with none of --dry-run, --resend-in-doubt, --detach")
	case f.detach && !isPostgres(f.ledger):
		return cfg, errors.New("--detach: needs a PostgreSQL ledger (--ledger postgres://...), whose workers send the rows")
	case f.lease < minLease:
		return cfg, fmt.Errorf("--lease %v: want %v or more", f.lease, minLease)
	case f.maxRetryAfter < 0:
		return cfg, fmt.Errorf("--max-retry-after %v: want 0 (never) or more", f.maxRetryAfter)
	}
	cfg.MaxLineBytes = f.maxLineBytes
	cfg.Stop = importer.StopConfig{UnreachableAfter: offIfZero(f.unreachableAfter), MaxRetryAfter: offIfZero(f.maxRetryAfter)}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = defaultConcurrency(f.rps)
	}
	cfg.MarkAhead = markAhead(f.rps)
	d, err := parseDelimiter(f.delimiter)
	if err != nil {
		return cfg, err
	}
	cfg.Delimiter = d
	cfg.Columns = f.columns
	if s := strings.TrimSpace(f.maxErrors); s != "" {
		if pct, ok := strings.CutSuffix(s, "%"); ok {
			v, err := strconv.ParseFloat(pct, 64)
			if err != nil || v <= 0 || v > 100 {
				return cfg, fmt.Errorf("--max-errors %q: want a count like 50 or a share like 5%%", f.maxErrors)
			}
			cfg.MaxErrorRate = v / 100
		} else {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				return cfg, fmt.Errorf("--max-errors %q: want a count like 50 or a share like 5%%", f.maxErrors)
			}
			cfg.MaxErrors = v
		}
	}
	return cfg, nil
}

// defaultConcurrency reaches rps when the server takes up to 100ms a call,
// with room for slower calls; without a client-side limit, 32.
func defaultConcurrency(rps float64) int {
	if rps <= 0 {
		return 32
	}
	return int(min(256, max(4, math.Ceil(rps*0.1*2))))
}

// markAhead is how many rows one ledger write marks in flight before their
// requests: about half a second of sending at rps, so that a crash leaves
// few rows in_doubt that were never sent; 256 without a limit.
func markAhead(rps float64) int {
	if rps <= 0 {
		return 256
	}
	return int(min(256, math.Ceil(rps/2)))
}

func parseDelimiter(s string) (rune, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return 0, nil
	case "tab", `\t`, "\t":
		return '\t', nil
	case "semicolon", ";":
		return ';', nil
	case "comma", ",":
		return ',', nil
	case "pipe", "|":
		return '|', nil
	}
	r := []rune(s)
	// A letter, digit or space would split emails and types apart, a
	// control character is a typing accident, and encoding/csv refuses
	// quotes, line ends and invalid UTF-8.
	if len(r) != 1 || r[0] == '"' || r[0] == utf8.RuneError || unicode.IsControl(r[0]) ||
		unicode.IsLetter(r[0]) || unicode.IsDigit(r[0]) || unicode.IsSpace(r[0]) {
		return 0, fmt.Errorf("--delimiter %q: want one punctuation character such as , ; or |, or tab", s)
	}
	return r[0], nil
}

// minLease keeps a lease longer than a heartbeat's round trip.
const minLease = time.Second

// minProgressEvery keeps --progress-every from flooding the log: a
// non-positive one made the ticker panic, a tiny one logs without pause.
const minProgressEvery = 100 * time.Millisecond

// parseColumnMap adds the pairs of a --map value (our=theirs, comma
// separated; a name may be in double quotes, and then hold commas) to m.
func parseColumnMap(s string, m *map[string]string) error {
	var pairs []string
	inQuotes, from := false, 0
	for i, c := range s {
		switch {
		case c == '"':
			inQuotes = !inQuotes
		case c == ',' && !inQuotes:
			pairs, from = append(pairs, s[from:i]), i+1
		}
	}
	pairs = append(pairs, s[from:])
	for _, p := range pairs {
		ours, theirs, ok := strings.Cut(p, "=")
		ours = strings.ToLower(strings.TrimSpace(ours))
		theirs = strings.TrimSpace(theirs)
		if t, err := strconv.Unquote(theirs); err == nil && strings.HasPrefix(theirs, `"`) {
			theirs = t
		}
		if ours == "customerid" || ours == "customer_id" {
			ours = "customerId"
		}
		if !ok || theirs == "" || (ours != "email" && ours != "type" && ours != "customerId") {
			return fmt.Errorf("%q: want our=theirs pairs, ours one of email, type, customerId; e.g. email=\"E-mail Address\",type=Kind", p)
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[ours] = theirs
	}
	return nil
}

func newLogger(w io.Writer, format string, verbose, quiet bool) (*slog.Logger, error) {
	level := slog.LevelInfo
	switch {
	case verbose:
		level = slog.LevelDebug
	case quiet:
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
