package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
)

// printSummary writes the end-of-run table and what to do next. cause is
// what stopped a run early, nil otherwise: the summary names it itself,
// since the error line on stderr may come out before or after it.
func printSummary(w io.Writer, s importer.Summary, rps float64, tgt target, ledgerPath string, cause error) {
	ledgerFlag := ""
	if ledgerPath != "bulkcreate.db" {
		ledgerFlag = " --ledger " + ledgerPath
	}
	if s.DryRun {
		printDryRunSummary(w, s, rps)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%s: %s in %s\n", tgt.Name(), s.Outcome, s.Elapsed.Round(time.Millisecond))
	if cause != nil {
		fmt.Fprintf(w, "stopped by: %v\n", cause)
	}
	printInput(w, s.Input)
	rows := []struct {
		name string
		n    int64
	}{
		{"created", s.Created}, {"exists", s.Exists}, {skippedLabel(s), s.Skipped},
		{"invalid", s.Invalid}, {"duplicate", s.Duplicate}, {"rejected", s.Rejected},
		{"failed", s.Failed}, {"in doubt", s.InDoubt}, {"not reached", s.Pending},
		{"not started", s.NotStarted()},
	}
	for _, r := range rows {
		if r.n > 0 || r.name == "created" {
			fmt.Fprintf(tw, "%s\t%d\t\n", r.name, r.n)
		}
	}
	fmt.Fprintf(tw, "rows read\t%d\t\n", s.Read)
	tw.Flush()
	if s.Elapsed >= 2*time.Second {
		fmt.Fprintf(w, "requests %d (%d throttled), %.1f/s\n", s.Requests, s.Throttled, achievedRate(s))
	} else {
		// Over a moment, the burst's free first request skews the rate.
		fmt.Fprintf(w, "requests %d (%d throttled)\n", s.Requests, s.Throttled)
	}
	if n := s.Invalid + s.Duplicate + s.Rejected; n > 0 {
		fmt.Fprintf(w, "next: %s to fix: bulkcreate failures%s > fix.csv, correct them, then bulkcreate import%s fix.csv\n", plural(n, "row"), ledgerFlag, ledgerFlag)
	}
	if s.AssignsIDs && s.Held > 0 {
		fmt.Fprintf(w, "warning: this target assigns its own customer ids: a row in doubt sent again may create a second customer, "+
			"so rows in doubt are not sent again (%d in this run); check them in Ripio (bulkcreate failures%s), "+
			"then re-run with --resend-in-doubt to send them\n", s.Held, ledgerFlag)
	} else if s.AssignsIDs {
		fmt.Fprintln(w, "note: this target assigns its own customer ids: rows in doubt are not sent again without --resend-in-doubt")
	}
	if s.ProbeTwice {
		fmt.Fprintf(w, "warning: the row on line %d, in doubt, was sent again alone to find out whether this target keeps the customerIds sent; "+
			"it does not, so the person on that line may now have two customers: check them in Ripio\n", s.ProbeLine)
	}
	if s.HeldUntilKnown > 0 && !s.AssignsIDs {
		next := "run the same import again: with no new row to tell, it sends one of them alone to find out " +
			"(at a target that assigns its own ids, that person may get a second customer); or check them in Ripio (bulkcreate failures" +
			ledgerFlag + ") and re-run with --resend-in-doubt"
		if s.KeepsIDs {
			next = "an answer since has shown it keeps them: run the same import again to send them"
		}
		fmt.Fprintf(w, "note: %s in doubt not sent again: no answer had shown that this target keeps the customerIds sent, "+
			"and where it does not a second send may create a second customer; %s\n", plural(s.HeldUntilKnown, "row"), next)
	}
	var left []string
	if n := s.Failed + s.InDoubt - s.Held + s.Pending + s.NotStarted(); n > 0 {
		left = append(left, plural(n, "row")+" unfinished")
	}
	if !s.ReadAll {
		left = append(left, "the rest of the file not read")
	}
	again := "run the same import again (safe: no customer is created twice)"
	if s.InDoubt > 0 && !s.KeepsIDs && !s.AssignsIDs {
		// No answer showed what the target does with ids: the next run
		// may send one row in doubt alone to find out.
		again = "run the same import again (rows in doubt go again only once an answer shows the target refuses a second customer)"
	}
	if cause != nil {
		again = "fix what stopped the run (above), then " + again
	}
	if len(left) > 0 {
		fmt.Fprintf(w, "next: %s: %s\n", strings.Join(left, " and "), again)
	}
}

// printDryRunSummary writes a dry run's plan: what it would send and skip,
// the first rows it would not send, and the time at --rps.
func printDryRunSummary(w io.Writer, s importer.Summary, rps float64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "dry run: nothing sent\n")
	printInput(w, s.Input)
	fmt.Fprintf(tw, "to send\t%d\t\n", s.ToSend)
	if s.ToSendInDoubt > 0 {
		fmt.Fprintf(tw, "of them in doubt, sent once an answer shows the target keeps the ids sent (or one alone, to find out)\t%d\t\n", s.ToSendInDoubt)
	}
	fmt.Fprintf(tw, "skip (done before)\t%d\t\n", s.Skipped)
	fmt.Fprintf(tw, "skip (rejected before, unchanged)\t%d\t\n", s.Rejected)
	fmt.Fprintf(tw, "invalid\t%d\t\n", s.Invalid)
	fmt.Fprintf(tw, "duplicate\t%d\t\n", s.Duplicate)
	if s.Held > 0 {
		fmt.Fprintf(tw, "in doubt, not sent again (the target assigns its own ids)\t%d\t\n", s.Held)
	}
	fmt.Fprintf(tw, "rows read\t%d\t\n", s.Read)
	tw.Flush()
	if len(s.Issues) > 0 {
		fmt.Fprintf(w, "rows not to be sent (the first %d of %d):\n", len(s.Issues), s.Invalid+s.Duplicate)
		for _, r := range s.Issues {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
	if rps > 0 && s.ToSend > 0 {
		d := time.Duration(float64(s.ToSend) / rps * float64(time.Second))
		about := "about " + d.Round(time.Second).String()
		if d < time.Second {
			about = "under a second"
		}
		fmt.Fprintf(w, "at --rps %g: %s\n", rps, about)
	}
}

// printInput names how the file was read, so that an operator sees which
// delimiter a detection chose; nothing when no header was read.
func printInput(w io.Writer, f importer.Format) {
	if f.Encoding != "" {
		fmt.Fprintf(w, "read as %s\n", f)
	}
}

// printInputChanged tells the operator that the file was still being
// written while it was read (inputFile): what was imported may not be all
// of it, or may hold a row cut short.
func printInputChanged(w io.Writer, changed string) {
	if changed != "" {
		fmt.Fprintf(w, "warning: %s: it was still being written; once it is complete, run the same import again (safe: no customer is created twice)\n", changed)
	}
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// skippedLabel names the rows a run skipped: done before, or, for a run
// that marked rows in doubt existing, any it left as they were.
func skippedLabel(s importer.Summary) string {
	if s.MarkExisting {
		return "left as they were (not in doubt, or another person)"
	}
	return "skipped (done before)"
}
