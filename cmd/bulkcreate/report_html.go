package main

import (
	"context"
	"math"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/runreport"
)

// htmlTopReasons is how many failure reasons the HTML report lists.
const htmlTopReasons = 10

// writeHTMLReport writes report --format html: one page on run runID of the
// target (0: its last run), with its last maxRuns runs listed.
func writeHTMLReport(ctx context.Context, e env, tf targetFlags, path string, runID int64, maxRuns int) error {
	l, err := ledger.Open(ctx, path, ledger.Options{MustExist: true})
	if err != nil {
		return withCode(exitUsage, err)
	}
	defer l.Close()
	name, err := tf.selectTarget(ctx, e, path)
	if err != nil {
		return usageError("report: %v", err)
	}
	rep, err := l.Report(ctx, name, maxRuns)
	if err != nil {
		return withCode(exitUsage, err)
	}
	run, ok := findRun(rep.Runs, runID)
	if !ok && runID > 0 {
		// An older run than the listed ones.
		all, err := l.Report(ctx, name, math.MaxInt32)
		if err != nil {
			return withCode(exitUsage, err)
		}
		run, ok = findRun(all.Runs, runID)
	}
	if !ok {
		if runID > 0 {
			return usageError("report: no run %d on target %s; try: bulkcreate report", runID, name)
		}
		return usageError("report: no run on target %s yet; try: bulkcreate import FILE", name)
	}
	samples, err := l.Samples(ctx, run.ID)
	if err != nil {
		return withCode(exitUsage, err)
	}
	var reasons runreport.Reasons
	if err := l.Failures(ctx, name, nil, func(f ledger.Failure) error {
		reasons.Add(f)
		return nil
	}); err != nil {
		return withCode(exitUsage, err)
	}
	page := runreport.Page{Ledger: path, Version: version, Generated: time.Now(),
		Run: run, Samples: samples, Target: rep}
	page.Reasons, page.OtherReasons = reasons.Top(htmlTopReasons)
	return runreport.Write(e.stdout, page)
}

// findRun is run id of runs, or the first (the newest) when id is 0.
func findRun(runs []ledger.RunRecord, id int64) (ledger.RunRecord, bool) {
	for _, r := range runs {
		if id == 0 || r.ID == id {
			return r, true
		}
	}
	return ledger.RunRecord{}, false
}
