package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

const reportUsage = `Usage: bulkcreate report [flags]

Counts the ledger's rows per status for the target the environment selects
(as for import), and lists the last runs.

Examples:
  bulkcreate report
  bulkcreate report --format json --ledger ripio-sandbox.db

Flags:
`

func runReport(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	path := fs.String("ledger", defaultLedger, "the ledger: a SQLite `file` or a postgres:// URL (default $"+ledgerEnv+" if set)")
	format := fs.String("format", "table", "table or json")
	runs := fs.Int("runs", 10, "how many of the last runs to list")
	var tf targetFlags
	posArgs, helped, err := parseArgs(e, fs, reportUsage, args)
	if helped || err != nil {
		return err
	}
	if len(posArgs) != 0 {
		return usageError("report: unexpected argument %q; try: bulkcreate report --ledger FILE", posArgs[0])
	}
	if *format != "table" && *format != "json" {
		return usageError("report: --format %q: want table or json", *format)
	}
	tgt, err := tf.resolve(e, false)
	if err != nil {
		return usageError("report: %v", err)
	}
	location, _ := ledgerLocation(e, fs, *path)
	l, err := openStore(ctx, location, true)
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer l.Close()
	rep, err := l.Report(ctx, tgt.Name(), *runs)
	if err != nil {
		return withCode(exitUsage, err)
	}
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(e.stdout, "target: %s\nledger: %s\n\n", rep.Target, shownLedger(location))
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range row.Statuses {
		fmt.Fprintf(tw, "%s\t%d\t\n", s, rep.Counts[s])
	}
	fmt.Fprintf(tw, "rows\t%d\t\n", rep.Rows)
	tw.Flush()
	if len(rep.Runs) > 0 {
		fmt.Fprintln(e.stdout, "\nlast runs:")
		tw = tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "run\tstarted\toutcome\tcreated\texists\tskipped\tnot done\tfile")
		for _, r := range rep.Runs {
			c := row.CountsOf(r.Counts)
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.ID, shortTime(r.StartedAt), r.Outcome,
				c.Created, c.Exists, c.Skipped, c.NotDone()+c.NotStarted(), r.SourceFile)
		}
		tw.Flush()
	}
	return nil
}

func shortTime(rfc string) string {
	if len(rfc) >= 19 {
		return strings.Replace(rfc[:19], "T", " ", 1)
	}
	return rfc
}

const failuresUsage = `Usage: bulkcreate failures [flags] > fix.csv

Writes every row of the selected target that is not created or existing as
CSV (email,type,customerId,status,reason,line,file), readable again by
import: fix the rows, then import the file. Each fixed row imported replaces
the issue recorded at its file and line, so report adds up afterwards.

Examples:
  bulkcreate failures > fix.csv
  bulkcreate failures --status rejected,invalid

Flags:
`

func runFailures(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("failures", flag.ContinueOnError)
	path := fs.String("ledger", defaultLedger, "the ledger: a SQLite `file` or a postgres:// URL (default $"+ledgerEnv+" if set)")
	statusList := fs.String("status", "", "only these statuses, comma-separated (invalid,duplicate,rejected,failed,in_doubt)")
	var tf targetFlags
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
	tgt, err := tf.resolve(e, false)
	if err != nil {
		return usageError("failures: %v", err)
	}
	location, _ := ledgerLocation(e, fs, *path)
	l, err := openStore(ctx, location, true)
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer l.Close()
	w := csv.NewWriter(e.stdout)
	w.Write([]string{"email", "type", "customerId", "status", "reason", "line", "file"})
	err = l.Failures(ctx, tgt.Name(), statuses, func(f ledger.Failure) error {
		customerID := f.CustomerID
		if customerID == importer.CustomerIDFor(f.Email) {
			// Derived from the email, not from the file: an empty column
			// keeps the row keyed by email, as it was, and a corrected
			// email gets its own id.
			customerID = ""
		}
		return w.Write([]string{f.Email, f.Type, customerID, string(f.Status), f.Reason, strconv.Itoa(f.SourceLine), f.SourceFile})
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
