package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/bulkcreate/bulkcreate/internal/importer"
)

// isTerminal reports whether w is a terminal a live bar can redraw.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress shows how an import goes: on a terminal, a live bar over the
// file's bytes with the counts per outcome and the rate limit; elsewhere
// (cron, CI), one structured log line every interval; with quiet, nothing.
type progress struct {
	im       *importer.Importer
	size     int64 // -1 when unknown (stdin)
	logger   *slog.Logger
	w        io.Writer
	tty      bool
	interval time.Duration

	done chan struct{}
	wg   sync.WaitGroup
}

func (p *progress) start() {
	p.done = make(chan struct{})
	p.wg.Add(1)
	go p.loop()
}

// stop ends the display; the summary follows on a clean line.
func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}

func (p *progress) loop() {
	defer p.wg.Done()
	start := time.Now()
	var bar *progressbar.ProgressBar
	every := p.interval
	if p.tty {
		every = 200 * time.Millisecond
		bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetWidth(24),
			progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			if bar != nil {
				p.drawBar(bar, start)
				bar.Exit() // leaves the last state on screen, with a newline
				fmt.Fprintln(p.w)
			}
			return
		case <-t.C:
			if bar != nil {
				p.drawBar(bar, start)
			} else {
				p.logLine(start)
			}
		}
	}
}

// finished counts the rows whose fate this run is settled.
func finished(s importer.Summary) int64 {
	return s.Created + s.Exists + s.Skipped + s.Invalid + s.Duplicate + s.Rejected + s.Failed + s.InDoubt
}

// estimateRows guesses the file's data rows from the share of its bytes
// parsed so far; -1 (a spinner) until there is something to go on. It uses
// the bytes the rows took, not the bytes read: the reader reads 64 KiB
// ahead, which made small files look half their size.
func (p *progress) estimateRows(s importer.Summary) int64 {
	if p.size <= 0 || s.Consumed <= 0 || s.Read == 0 {
		return -1
	}
	if s.Consumed >= p.size-int64(len("\uFEFF")) {
		return s.Read // the reader is at the end: exact
	}
	return int64(float64(s.Read) * float64(p.size) / float64(s.Consumed))
}

func (p *progress) drawBar(bar *progressbar.ProgressBar, start time.Time) {
	s := p.im.Progress()
	if est := p.estimateRows(s); est > 0 && est != bar.GetMax64() {
		bar.ChangeMax64(est)
	}
	desc := fmt.Sprintf("created %d exists %d skipped %d", s.Created, s.Exists, s.Skipped)
	if n := s.Invalid + s.Duplicate; n > 0 {
		desc += fmt.Sprintf(" invalid %d duplicate %d", s.Invalid, s.Duplicate)
	}
	if n := s.Rejected + s.Failed + s.InDoubt; n > 0 {
		desc += fmt.Sprintf(" rejected %d failed %d in-doubt %d", s.Rejected, s.Failed, s.InDoubt)
	}
	if l := p.im.Limiter(); l != nil {
		if st := l.Stats(); !math.IsInf(st.Rate, 1) {
			desc += fmt.Sprintf(" | limit %.0f/s", st.Rate)
			if st.Throttles > 0 {
				desc += fmt.Sprintf(" (%d×429)", st.Throttles)
			}
		}
	}
	bar.Describe(desc)
	bar.Set64(finished(s))
}

func (p *progress) logLine(start time.Time) {
	s := p.im.Progress()
	attrs := []any{
		"read", s.Read, "created", s.Created, "exists", s.Exists, "skipped", s.Skipped,
		"invalid", s.Invalid, "duplicate", s.Duplicate, "rejected", s.Rejected,
		"failed", s.Failed, "in_doubt", s.InDoubt, "pending", s.Pending,
		"requests", s.Requests, "throttled", s.Throttled,
		"rate", fmt.Sprintf("%.1f/s", float64(s.Requests)/time.Since(start).Seconds()),
	}
	if p.size > 0 {
		attrs = append(attrs, "file_read", fmt.Sprintf("%.1f%%", 100*float64(s.Consumed)/float64(p.size)))
	}
	if l := p.im.Limiter(); l != nil {
		if r := l.Stats().Rate; !math.IsInf(r, 1) {
			attrs = append(attrs, "limit", fmt.Sprintf("%.1f/s", r))
		}
	}
	p.logger.Info("progress", attrs...)
}
