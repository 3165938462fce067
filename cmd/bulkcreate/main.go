// Command bulkcreate creates Ripio customers in bulk from a CSV file and
// records every row's outcome in a ledger (SQLite, or PostgreSQL), so that re-runs skip what
// is done, retry what failed, and never create a customer twice.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3"; else
// the module's version from the build info (versionText).
var version = "dev"

// Exit codes, documented in usage and the README.
const (
	exitOK          = 0   // every row created or already existing
	exitNotDone     = 1   // some rows not created (invalid, duplicate, rejected, failed, in doubt), or FILE changed while read
	exitUsage       = 2   // usage or configuration error; nothing was sent
	exitAborted     = 3   // run aborted: credentials, wrong URL, server unreachable/failing/throttling, error limit, ledger
	exitInterrupted = 130 // stopped by a signal
)

func main() {
	ctx, stop := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "\nbulkcreate: %v: stopping (an import finishes the requests in flight and saves the ledger); signal again to quit at once\n", sig)
		stop(errInterrupted)
		<-sigs
		// The ledger holds every request that may be out as in flight: the
		// next run treats those rows as in doubt.
		fmt.Fprintln(os.Stderr, "bulkcreate: quitting now; rows in flight will be checked by the next run")
		os.Exit(exitInterrupted)
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(exitCode(err))
}

var errInterrupted = errors.New("interrupted")

// exitError carries an exit code up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// exitCode prints err's reason, unless already printed, and returns its code.
func exitCode(err error) int {
	if err != nil && !errors.Is(err, errQuiet) {
		fmt.Fprintln(os.Stderr, "bulkcreate:", err)
	}
	return codeOf(err)
}

// codeOf is the documented exit code for err.
func codeOf(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitAborted
}

// errQuiet marks an exit whose reason was already printed.
var errQuiet = errors.New("")

// usageError is a bad command line: exit 2 with a one-line reason.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// env is the environment, injected so command tests run in-process.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		return usageError("no command given; try: bulkcreate --help, or bulkcreate import samples/customers.csv")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "import":
		return runImport(ctx, e, rest)
	case "worker":
		return runWorker(ctx, e, rest)
	case "report":
		return runReport(ctx, e, rest)
	case "failures":
		return runFailures(ctx, e, rest)
	case "sandbox":
		return runSandbox(ctx, e, rest)
	case "sample":
		return runSample(ctx, e, rest)
	case "version", "--version":
		fmt.Fprint(stdout, versionText())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, mainUsage)
		return nil
	}
	return usageError("unknown command %q; try: bulkcreate --help", cmd)
}

const mainUsage = `bulkcreate creates Ripio customers in bulk from a CSV file (columns email,type
and optionally customerId), records every row's outcome in a SQLite ledger,
and on a re-run skips what is done, retries what failed and never creates a
customer twice.

Usage:
  bulkcreate import [flags] FILE|-     import a CSV (- reads stdin)
  bulkcreate worker [flags]            send rows imports queued on a PostgreSQL ledger
  bulkcreate report [flags]            counts per status and the last runs
  bulkcreate failures [flags]          rows not created, as a CSV to fix and re-import
  bulkcreate sandbox [flags]           serve a fake Ripio API for trials
  bulkcreate sample [flags]            write a generated CSV of any size
  bulkcreate version

Run "bulkcreate COMMAND --help" for a command's flags.

Target (environment):
  RIPIO_BASE_URL        API root, or "sandbox" / "production" for Ripio's own.
                        Unset: the embedded sandbox; nothing leaves this machine.
  RIPIO_CLIENT_ID       OAuth2 client id
  RIPIO_CLIENT_SECRET   OAuth2 client secret (or --client-secret-file,
                        or RIPIO_CLIENT_SECRET_FILE)

Ledger (environment):
  BULKCREATE_LEDGER     the ledger when --ledger is not given: a SQLite file,
                        or a postgres:// URL (password better in PGPASSWORD
                        or ~/.pgpass); default bulkcreate.db

Exit codes:
  0    every row created or already existing
  1    some rows not created (invalid, duplicate, rejected, failed, in doubt),
       or FILE changed while it was read; a dry run: some rows invalid or
       duplicate
  2    usage or configuration error; nothing was sent
  3    run aborted (credentials refused, wrong RIPIO_BASE_URL, server
       unreachable, failing every request or throttling without end,
       --max-errors reached, ledger failure)
  130  interrupted

Example:
  bulkcreate import samples/customers.csv && bulkcreate report
`

// parseArgs parses a subcommand's flags, which may come before or after
// its arguments, and returns the arguments. --help prints the usage on
// stdout (helped is then true); a bad flag is a one-line usage error.
func parseArgs(e env, fs *flag.FlagSet, usage string, args []string) (positional []string, helped bool, err error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(e.stdout, usage)
				var defaults strings.Builder
				fs.SetOutput(&defaults)
				fs.PrintDefaults()
				// The flag package prints -name; the README and the
				// examples write --name (both work).
				fmt.Fprint(e.stdout, strings.ReplaceAll("\n"+defaults.String(), "\n  -", "\n  --")[1:])
				return nil, true, nil
			}
			return nil, false, usageError("%s: %v; try: bulkcreate %s --help", fs.Name(), err, fs.Name())
		}
		if fs.NArg() == 0 {
			return positional, false, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
