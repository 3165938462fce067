package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
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
	im       progressSource
	size     int64 // -1 when unknown (stdin)
	logger   *slog.Logger
	w        io.Writer
	tty      bool
	interval time.Duration

	done chan struct{}
	wg   sync.WaitGroup
}

// progressSource is what a progress display reads: the counts so far and
// the rate limiter in force, nil for none. An *importer.Importer is one; a
// fleet import's counts across every process (fleetProgress) another.
type progressSource interface {
	Progress() importer.Summary
	Limiter() *ratelimit.Limiter
}

func (p *progress) start() {
	p.done = make(chan struct{})
	p.wg.Add(1)
	go p.loop()
}

// stop ends the display; the summary follows on a clean line. A nil
// *progress (--quiet) has nothing to stop.
func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
}

func (p *progress) loop() {
	defer p.wg.Done()
	start := time.Now()
	every := p.interval
	if p.tty {
		every = 200 * time.Millisecond
		p.drawBar(start)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			if p.tty {
				p.drawBar(start) // the last state stays on screen
				fmt.Fprintln(p.w)
			}
			return
		case <-t.C:
			if p.tty {
				p.drawBar(start)
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

// snapshot is the state a progress display shows.
type snapshot struct {
	importer.Summary
	done      int64 // rows finished
	total     int64 // rows estimated; -1 when unknown
	elapsed   time.Duration
	rowRate   float64       // rows finished per second
	eta       time.Duration // -1 when unknown
	limit     float64       // the rate limit in force; 0 for none
	throttles int64         // 429s seen
	paused    time.Duration // how long the server still holds the pool
}

func (p *progress) snapshot(start, now time.Time) snapshot {
	s := p.im.Progress()
	sn := snapshot{Summary: s, done: finished(s), total: p.estimateRows(s), elapsed: now.Sub(start), eta: -1}
	if sn.total >= 0 && sn.total < sn.done {
		sn.total = sn.done
	}
	if secs := sn.elapsed.Seconds(); secs > 0 {
		sn.rowRate = float64(sn.done) / secs
	}
	if sn.total >= 0 && sn.rowRate > 0 {
		sn.eta = time.Duration(float64(sn.total-sn.done) / sn.rowRate * float64(time.Second))
	}
	if l := p.im.Limiter(); l != nil {
		st := l.Stats()
		if !math.IsInf(st.Rate, 1) {
			sn.limit = st.Rate
		}
		sn.throttles = st.Throttles
		if until := l.State().PausedUntil; until.After(now) {
			sn.paused = until.Sub(now)
		}
	}
	return sn
}

// terminalWidth is the width of the terminal p draws on, read at every
// redraw so that a resized window is followed.
func (p *progress) terminalWidth() int {
	if f, ok := p.w.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	return 80
}

func (p *progress) drawBar(start time.Time) {
	line := renderBar(p.snapshot(start, time.Now()), p.terminalWidth())
	// Back to the line's start, the line, then clear what a longer line
	// left: the line never reaches the last column, so the terminal never
	// wraps it and \r always returns to it.
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
}

// segment is a part of the bar's line; the least important go first when
// the terminal is narrow.
type segment struct {
	text string
	keep int // higher: dropped later
}

const (
	barWidth    = 24
	minBarWidth = 10
)

// renderBar lays sn out on one line of fewer than width columns:
//
//	87% |████████████████████    | (1797/2048, 996 rows/s) [1s:0s] created 1797 exists 0 skipped 0 | limit 1000/s
//
// On a narrow terminal the bar narrows, then the details go, least useful
// first; a pause by the server is the last to go.
func renderBar(sn snapshot, width int) string {
	room := max(width-1, 1) // the last column would make some terminals wrap
	segs := []segment{{"", 9}}
	if sn.total >= 0 {
		segs = append(segs, segment{fmt.Sprintf("(%d/%d, %.0f rows/s)", sn.done, sn.total, sn.rowRate), 8})
	} else {
		segs = append(segs, segment{fmt.Sprintf("(%d rows, %.0f rows/s)", sn.done, sn.rowRate), 8})
	}
	times := "[" + wholeSeconds(sn.elapsed) + ":"
	if sn.eta >= 0 {
		times += wholeSeconds(sn.eta) + "]"
	} else {
		times += "?]"
	}
	segs = append(segs, segment{times, 5})
	switch {
	case sn.paused > 0:
		segs = append(segs, segment{"paused by the server for " + wholeSeconds(sn.paused+time.Second-1), 10})
	case sn.Waiting > 0:
		segs = append(segs, segment{fmt.Sprintf("%d waiting out a Retry-After", sn.Waiting), 10})
	}
	if sn.throttles > 0 {
		segs = append(segs, segment{fmt.Sprintf("%d×429", sn.throttles), 8})
	}
	segs = append(segs, segment{fmt.Sprintf("created %d", sn.Created), 7},
		segment{fmt.Sprintf("exists %d", sn.Exists), 4}, segment{fmt.Sprintf("skipped %d", sn.Skipped), 3})
	if sn.Invalid+sn.Duplicate > 0 {
		segs = append(segs, segment{fmt.Sprintf("invalid %d duplicate %d", sn.Invalid, sn.Duplicate), 4})
	}
	if sn.Rejected+sn.Failed+sn.InDoubt > 0 {
		segs = append(segs, segment{fmt.Sprintf("rejected %d failed %d in-doubt %d", sn.Rejected, sn.Failed, sn.InDoubt), 6})
	}
	if sn.limit > 0 {
		segs = append(segs, segment{fmt.Sprintf("| limit %.0f/s", sn.limit), 2})
	}

	// Narrow the bar, drop the details, drop the bar, drop the counts but
	// a pause, and only then cut.
	bar := barWidth
	for {
		segs[0].text = barHead(sn, bar)
		line := joinSegments(segs)
		n := utf8.RuneCountInString(line)
		switch {
		case n <= room:
			return line
		case bar > minBarWidth:
			bar = max(minBarWidth, bar-(n-room))
		case dropSegment(segs, 7):
		case bar > 0:
			bar = 0
		case dropSegment(segs, 10):
		default:
			return string([]rune(line)[:room])
		}
	}
}

// dropSegment empties the least important segment of segs kept below keep,
// and reports whether there was one.
func dropSegment(segs []segment, keep int) bool {
	drop := -1
	for i, s := range segs {
		if s.text != "" && s.keep < keep && (drop < 0 || s.keep < segs[drop].keep) {
			drop = i
		}
	}
	if drop < 0 {
		return false
	}
	segs[drop].text = ""
	return true
}

// barHead is the share done and the bar, or nothing while the total is
// unknown (stdin).
func barHead(sn snapshot, width int) string {
	if sn.total < 0 {
		return ""
	}
	share := 1.0
	if sn.total > 0 {
		share = float64(sn.done) / float64(sn.total)
	}
	if width == 0 {
		return fmt.Sprintf("%3d%%", int(share*100))
	}
	filled := int(share * float64(width))
	return fmt.Sprintf("%3d%% |%s%s|", int(share*100), strings.Repeat("█", filled), strings.Repeat(" ", width-filled))
}

func joinSegments(segs []segment) string {
	var parts []string
	for _, s := range segs {
		if s.text != "" {
			parts = append(parts, s.text)
		}
	}
	return strings.Join(parts, " ")
}

// wholeSeconds shows d as 1m30s, without fractions.
func wholeSeconds(d time.Duration) string {
	return d.Truncate(time.Second).String()
}

// round1 keeps one decimal: log lines carry numbers, not formatted text.
func round1(v float64) float64 { return math.Round(v*10) / 10 }

func (p *progress) logLine(start time.Time) {
	sn := p.snapshot(start, time.Now())
	s := sn.Summary
	attrs := []any{
		"read", s.Read, "created", s.Created, "exists", s.Exists, "skipped", s.Skipped,
		"invalid", s.Invalid, "duplicate", s.Duplicate, "rejected", s.Rejected,
		"failed", s.Failed, "in_doubt", s.InDoubt, "pending", s.Pending,
		"requests", s.Requests, "throttled", s.Throttled,
		"elapsed_s", round1(sn.elapsed.Seconds()),
		"rows_per_s", round1(sn.rowRate),
		"requests_per_s", round1(float64(s.Requests) / max(sn.elapsed.Seconds(), 1e-9)),
	}
	if sn.total >= 0 {
		attrs = append(attrs, "rows_estimated", sn.total)
	}
	if sn.eta >= 0 {
		attrs = append(attrs, "eta_s", round1(sn.eta.Seconds()))
	}
	if p.size > 0 {
		attrs = append(attrs, "file_read_pct", round1(100*float64(s.Consumed)/float64(p.size)))
	}
	if sn.limit > 0 {
		attrs = append(attrs, "limit_per_s", round1(sn.limit))
	}
	if sn.paused > 0 {
		attrs = append(attrs, "paused_by_server_s", round1(sn.paused.Seconds()))
	}
	if sn.Waiting > 0 {
		attrs = append(attrs, "waiting_retry_after", sn.Waiting)
	}
	p.logger.Info("progress", attrs...)
}
