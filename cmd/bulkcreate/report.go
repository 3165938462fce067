package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

const reportUsage = `Usage: bulkcreate report [flags]

Counts the ledger's rows per status for the target the environment selects
(as for import) or --target names, and lists the last runs. When that
target has no rows, it names the targets the ledger holds.

Examples:
  bulkcreate report
  bulkcreate report --format json --ledger ripio-sandbox.db
  bulkcreate report --target embedded-sandbox
  bulkcreate report --format html > run.html    # the last run, with charts

Flags:
`

func runReport(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	path := fs.String("ledger", defaultLedger, "the ledger: a SQLite `file` or a postgres:// URL (default $"+ledgerEnv+" if set)")
	format := fs.String("format", "table", "table, json, or html (one page on a run, to open in a browser; SQLite ledgers)")
	runID := fs.Int64("run", 0, "with --format html: the run to show (default: the last)")
	runs := fs.Int("runs", 10, "how many of the last runs to list")
	var tf targetFlags
	tf.registerSelect(fs)
	posArgs, helped, err := parseArgs(e, fs, reportUsage, args)
	if helped || err != nil {
		return err
	}
	if len(posArgs) != 0 {
		return usageError("report: unexpected argument %q; try: bulkcreate report --ledger FILE", posArgs[0])
	}
	if *format == "html" {
		location, _ := ledgerLocation(e, fs, *path)
		if isPostgres(location) {
			return usageError("report: --format html reads SQLite ledgers only; use --format json on a PostgreSQL ledger")
		}
		return writeHTMLReport(ctx, e, tf, location, *runID, *runs)
	}
	if *format != "table" && *format != "json" {
		return usageError("report: --format %q: want table, json or html", *format)
	}
	if *runs < 0 { // SQLite reads LIMIT -1 as no limit
		return usageError("report: --runs %d: want 0 or more", *runs)
	}
	if tf.name == "" {
		if _, err := tf.resolve(e, false); err != nil {
			return usageError("report: %v", err)
		}
	}
	location, _ := ledgerLocation(e, fs, *path)
	l, err := openStore(ctx, location, true)
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer l.Close()
	name, err := tf.selectTarget(ctx, e, location)
	if err != nil {
		return usageError("report: %v", err)
	}
	rep, err := l.Report(ctx, name, *runs)
	if err != nil {
		return withCode(exitUsage, err)
	}
	others := otherTargets(ctx, location, name, rep.Rows, len(rep.Runs))
	fleet, err := readFleet(ctx, l, name)
	if err != nil {
		return withCode(exitUsage, err)
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		out := reportToJSON(rep, shownLedger(location), others)
		out.liveFleet = fleet
		return enc.Encode(out)
	}
	warnOtherTargets(e.stderr, name, others)
	printReportTable(e.stdout, rep, shownLedger(location))
	printFleet(e.stdout, fleet)
	return nil
}

// printReportTable writes rep as report's table: the rows by status, then
// the last runs.
func printReportTable(w io.Writer, rep ledger.Report, ledgerName string) {
	fmt.Fprintf(w, "target: %s\nledger: %s\n\n", rep.Target, ledgerName)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range row.Statuses {
		fmt.Fprintf(tw, "%s\t%d\t\n", s, rep.Counts[s])
	}
	if n := rep.Counts[row.Queued]; n > 0 {
		fmt.Fprintf(tw, "queued (to send)\t%d\t\n", n)
	}
	fmt.Fprintf(tw, "rows\t%d\t\n", rep.Rows)
	tw.Flush()
	if len(rep.Runs) > 0 {
		fmt.Fprintln(w, "\nlast runs:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "run\tstarted\toutcome\tcreated\texists\tskipped\tnot done\tfile")
		for _, r := range rep.Runs {
			c := row.CountsOf(r.Counts)
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.ID, shortTime(r.StartedAt), r.Outcome,
				c.Created, c.Exists, c.Skipped, c.NotDone()+c.NotStarted(), r.SourceFile)
		}
		tw.Flush()
		for _, r := range rep.Runs {
			if r.StoppedBy != "" {
				fmt.Fprintf(w, "run %d stopped by: %s\n", r.ID, r.StoppedBy)
			}
		}
	}
}

// shortTime shows a ledger time (RFC 3339, UTC) in the local zone, to the
// second, with the zone named: a run at 02:00 in cron's zone is not
// mistaken for one at 02:00 UTC.
func shortTime(rfc string) string {
	t, err := time.Parse(time.RFC3339Nano, rfc)
	if err != nil {
		return rfc
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// reportJSON is report --format json; its runs have --summary-json's keys.
type reportJSON struct {
	Target    string         `json:"target"`
	Ledger    string         `json:"ledger"`
	Rows      int            `json:"rows"`
	Counts    map[string]int `json:"counts"`
	Runs      []runJSON      `json:"runs"`                   // newest first
	Targets   []ledgerTarget `json:"otherTargets,omitempty"` // when this target has no rows: the ones the ledger holds
	liveFleet                // PostgreSQL: imports and workers at work
}

func reportToJSON(rep ledger.Report, path string, others []ledgerTarget) reportJSON {
	out := reportJSON{Target: rep.Target, Ledger: path, Rows: rep.Rows, Counts: map[string]int{}, Runs: []runJSON{}, Targets: others}
	for s, n := range rep.Counts {
		out.Counts[string(s)] = n
	}
	for _, r := range rep.Runs {
		out.Runs = append(out.Runs, runJSON{
			RunID: r.ID, Target: rep.Target, File: r.SourceFile, StartedAt: r.StartedAt, EndedAt: r.EndedAt,
			Outcome: r.Outcome, Counts: r.Counts, Options: r.Options, StoppedBy: r.StoppedBy,
		})
	}
	return out
}

const failuresUsage = `Usage: bulkcreate failures [flags] > fix.csv

Writes every row of the target the environment selects (as for import) or
--target names that is not created or existing as CSV
(email,type,customerId,status,reason,line,file,issue), readable again by
import: fix the rows, then import the file. A cell that a spreadsheet would
take for a formula (it begins with = + - @) is written with a leading
apostrophe, which import takes off again. Each fixed row imported replaces
the issue recorded at its file and line, so report adds up afterwards, but
only while that issue is the one written (issue is a digest of it): a line
re-imported with other content since keeps its new issue. When that target
has no rows, it names on stderr the targets the ledger holds.

Examples:
  bulkcreate failures > fix.csv
  bulkcreate failures --status rejected,invalid
  bulkcreate failures --target embedded-sandbox > fix.csv

Flags:
`

func runFailures(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("failures", flag.ContinueOnError)
	path := fs.String("ledger", defaultLedger, "the ledger: a SQLite `file` or a postgres:// URL (default $"+ledgerEnv+" if set)")
	statusList := fs.String("status", "", "only these statuses, comma-separated (invalid,duplicate,rejected,failed,in_doubt)")
	var tf targetFlags
	tf.registerSelect(fs)
	posArgs, helped, err := parseArgs(e, fs, failuresUsage, args)
	if helped || err != nil {
		return err
	}
	if len(posArgs) != 0 {
		return usageError("failures: unexpected argument %q; try: bulkcreate failures > fix.csv", posArgs[0])
	}
	var statuses []row.Status
	if *statusList != "" {
		valid := map[row.Status]bool{row.Invalid: true, row.Duplicate: true, row.Rejected: true, row.Failed: true, row.InDoubt: true}
		for _, s := range strings.Split(*statusList, ",") {
			st := row.Status(strings.ReplaceAll(strings.TrimSpace(strings.ToLower(s)), "-", "_"))
			if !valid[st] {
				return usageError("failures: --status %q: want some of invalid,duplicate,rejected,failed,in_doubt", s)
			}
			statuses = append(statuses, st)
		}
	}
	if tf.name == "" {
		if _, err := tf.resolve(e, false); err != nil {
			return usageError("failures: %v", err)
		}
	}
	location, _ := ledgerLocation(e, fs, *path)
	l, err := openStore(ctx, location, true)
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer l.Close()
	name, err := tf.selectTarget(ctx, e, location)
	if err != nil {
		return usageError("failures: %v", err)
	}
	if rep, err := l.Report(ctx, name, 1); err == nil {
		warnOtherTargets(e.stderr, name, otherTargets(ctx, location, name, rep.Rows, len(rep.Runs)))
	}
	w := csv.NewWriter(e.stdout)
	w.Write([]string{"email", "type", "customerId", "status", "reason", "line", "file", "issue"})
	err = l.Failures(ctx, name, statuses, func(f ledger.Failure) error {
		customerID := f.CustomerID
		if customerID == importer.CustomerIDFor(f.Email) {
			// Derived from the email, not from the file: an empty column
			// keeps the row keyed by email, as it was, and a corrected
			// email gets its own id.
			customerID = ""
		}
		row := []string{f.Email, f.Type, customerID, string(f.Status), f.Reason, strconv.Itoa(f.SourceLine), f.SourceFile, f.Digest()}
		for i := range row {
			row[i] = importer.SpreadsheetSafe(row[i]) // import takes the apostrophe off again
		}
		return w.Write(row)
	})
	w.Flush()
	if err == nil {
		err = w.Error()
	}
	if err != nil {
		return withCode(exitUsage, err)
	}
	return nil
}
