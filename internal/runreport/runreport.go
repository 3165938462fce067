// Package runreport renders one import run, as the ledger recorded it, as
// a single self-contained HTML page: its counts, charts of its rates over
// time (inline SVG drawn here), the commonest failure reasons and the
// target's runs. The page loads nothing from anywhere (no scripts, fonts or
// images), prints on A4 or Letter, and reads on a phone.
//
// Failure reasons are grouped with their quoted values taken out, so the
// page names no email; the target and file paths appear as the ledger has
// them.
package runreport

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Page is what the report shows.
type Page struct {
	Ledger    string // the ledger file, as given
	Version   string // bulkcreate's
	Generated time.Time
	Run       ledger.RunRecord
	Samples   []ledger.Sample // the run's time series, in time order
	Target    ledger.Report   // the target's counts and its last runs
	Reasons   []Reason        // the commonest failure reasons on the target
	// OtherReasons counts the failed rows whose reasons are not listed.
	OtherReasons int
}

//go:embed page.html.tmpl
var templates embed.FS

var pageTemplate = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"clock":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"base":     filepath.Base,
	"duration": formatDuration,
	"rate":     func(v float64) string { return fmt.Sprintf("%.1f/s", v) },
	"add":      func(a, b float64) float64 { return a + b },
	"sub":      func(a, b float64) float64 { return a - b },
}).ParseFS(templates, "page.html.tmpl"))

// Write renders p as HTML to w.
func Write(w io.Writer, p Page) error {
	v := newView(p)
	if err := pageTemplate.Execute(w, v); err != nil {
		return fmt.Errorf("runreport: %w", err)
	}
	return nil
}

// view is the page as the template draws it.
type view struct {
	Page
	Title            string
	Started, Ended   time.Time // zero when unknown
	Elapsed          time.Duration
	Tiles            []tile
	TargetTiles      []tile
	Charts           [][2]chart // wide and narrow; none without samples
	Requests, Errors int64
	Throttled        int64
	Achieved, Peak   float64 // requests per second
	Runs             []runRow
}

type tile struct {
	Label string
	N     int64
	Class string // good, bad or "" (neutral)
}

type runRow struct {
	ledger.RunRecord
	Elapsed time.Duration
	Started time.Time
	NotDone int
	Current bool
}

func newView(p Page) view {
	v := view{Page: p, Title: fmt.Sprintf("bulkcreate run %d", p.Run.ID)}
	v.Started = parseTime(p.Run.StartedAt)
	v.Ended = parseTime(p.Run.EndedAt)
	if !v.Started.IsZero() && !v.Ended.IsZero() {
		v.Elapsed = v.Ended.Sub(v.Started)
	}
	c := p.Run.Counts
	v.Tiles = []tile{
		{"created", int64(c["created"]), "good"}, {"already existed", int64(c["exists"]), "good"},
		{"skipped (done before)", int64(c["skipped"]), ""}, {"invalid", int64(c["invalid"]), "bad"},
		{"duplicate", int64(c["duplicate"]), "bad"}, {"rejected", int64(c["rejected"]), "bad"},
		{"failed", int64(c["failed"]), "bad"}, {"in doubt", int64(c["in_doubt"]), "bad"},
		{"not finished", int64(c["pending"] + c["not_started"]), "bad"}, {"rows read", int64(c["read"]), ""},
	}
	for _, s := range row.Statuses {
		class := "bad"
		if s.Done() {
			class = "good"
		}
		v.TargetTiles = append(v.TargetTiles, tile{strings.ReplaceAll(string(s), "_", " "), int64(p.Target.Counts[s]), class})
	}
	v.TargetTiles = append(v.TargetTiles, tile{"rows", int64(p.Target.Rows), ""})
	for _, ts := range [][]tile{v.Tiles, v.TargetTiles} {
		for i := range ts {
			if ts[i].N == 0 {
				ts[i].Class = "" // nothing to celebrate or worry about
			}
		}
	}
	for _, r := range p.Target.Runs {
		row := runRow{RunRecord: r, Started: parseTime(r.StartedAt), Current: r.ID == p.Run.ID}
		if end := parseTime(r.EndedAt); !end.IsZero() && !row.Started.IsZero() {
			row.Elapsed = end.Sub(row.Started)
		}
		for _, k := range []string{"invalid", "duplicate", "rejected", "failed", "in_doubt", "pending", "not_started"} {
			row.NotDone += r.Counts[k]
		}
		v.Runs = append(v.Runs, row)
	}
	v.charts()
	return v
}

// charts draws the run's rates and its progress from its samples.
func (v *view) charts() {
	ss := v.Samples
	if len(ss) == 0 {
		return
	}
	from, to := ss[0].At, ss[len(ss)-1].At.Add(ss[len(ss)-1].Span)
	if v.Started.IsZero() {
		v.Started = from
	}
	n := len(ss)
	mid := make([]time.Time, n)
	starts := make([]time.Time, n)
	spans := make([]time.Duration, n)
	sent, throttled, errs, limit := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	rows, created := make([]float64, n), make([]float64, n)
	var cumRows, cumCreated int64
	limited := false
	for i, s := range ss {
		mid[i], starts[i], spans[i] = s.At.Add(s.Span/2), s.At, s.Span
		secs := s.Span.Seconds()
		if secs <= 0 {
			secs = math.Inf(1) // an empty stretch: no rate
		}
		e := max(0, s.Requests-s.Throttled-s.Created-s.Exists)
		sent[i], throttled[i], errs[i] = float64(s.Requests)/secs, float64(s.Throttled)/secs, float64(e)/secs
		v.Requests += s.Requests
		v.Throttled += s.Throttled
		v.Errors += e
		// The last stretch ends with the run, often a moment after the
		// sample before: its rate says little.
		if i == 0 || i < n-1 || s.Span*2 >= ss[i-1].Span {
			v.Peak = max(v.Peak, sent[i])
		}
		limit[i] = math.NaN()
		if s.RateLimit > 0 {
			limit[i], limited = s.RateLimit, true
		}
		cumRows += s.Rows
		cumCreated += s.Created + s.Exists
		rows[i], created[i] = float64(cumRows), float64(cumCreated)
	}
	if d := to.Sub(from).Seconds(); d > 0 {
		v.Achieved = float64(v.Requests) / d
	}
	lines := []line{{name: "requests sent/s", class: "sent", at: mid, v: sent}}
	if limited {
		lines = append(lines, line{name: "rate limit in force", class: "limit", at: starts, v: limit, step: spans})
	}
	// 429s drawn last, over errors, where both are zero.
	lines = append(lines,
		line{name: "errors/s", class: "errors", at: mid, v: errs, quietZeros: true},
		line{name: "429 (throttled)/s", class: "throttled", at: mid, v: throttled, quietZeros: true})
	for _, lay := range []layout{wide, narrow} {
		rates := newChart(lay, "rates", "Requests per second",
			"Requests sent per second over the run, the client's rate limit in force, requests the server answered 429 (throttled), "+
				"and errors: requests answered neither created, exists nor 429 (rejected rows, 5xx, timeouts).",
			"requests/s", from, to, lines)
		progress := newChart(lay, "progress", "Rows finished",
			"Rows finished since the run began (created, existing, skipped, invalid, failed: any end), and of them created or already existing.",
			"rows", from, to, []line{
				{name: "rows finished", class: "rows", at: appendTime(from, ends(ss)), v: append([]float64{0}, rows...)},
				{name: "created or existing", class: "created", at: appendTime(from, ends(ss)), v: append([]float64{0}, created...)},
			})
		if lay == wide {
			v.Charts = append(v.Charts, [2]chart{rates}, [2]chart{progress})
		} else {
			v.Charts[0][1], v.Charts[1][1] = rates, progress
		}
	}
}

func ends(ss []ledger.Sample) []time.Time {
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		out[i] = s.At.Add(s.Span)
	}
	return out
}

func appendTime(first time.Time, rest []time.Time) []time.Time {
	return append([]time.Time{first}, rest...)
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// formatDuration reads like 3h07m, 4m05s or 12.3s.
func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
