package runreport

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

func testPage(n int) Page {
	t0 := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	var samples []ledger.Sample
	for i := range n {
		samples = append(samples, ledger.Sample{At: t0.Add(time.Duration(i) * 5 * time.Second), Span: 5 * time.Second,
			Requests: 100, Throttled: int64(i % 3), Created: 90, Exists: 5, Rows: 96, RateLimit: 20 - float64(i%2)})
	}
	var reasons Reasons
	for i := range 3 {
		reasons.Add(ledger.Failure{Status: row.Invalid, SourceFile: "/data/in.csv", SourceLine: 10 + i,
			Reason: `/data/in.csv:` + strconv.Itoa(10+i) + `: email: "ana` + strconv.Itoa(i) + `@example" has no domain with a dot`})
	}
	reasons.Add(ledger.Failure{Status: row.Rejected, Reason: "ripio: 400: invalid type"})
	p := Page{
		Ledger: "bulkcreate.db", Version: "test", Generated: t0.Add(time.Hour),
		Run: ledger.RunRecord{ID: 7, SourceFile: "/data/in.csv", StartedAt: t0.Format(time.RFC3339Nano),
			EndedAt: t0.Add(time.Duration(n) * 5 * time.Second).Format(time.RFC3339Nano), Outcome: "completed",
			Counts: map[string]int{"read": 100, "created": 90, "exists": 5, "invalid": 3, "rejected": 1}},
		Samples: samples,
		Target: ledger.Report{Target: "https://api.ripio.example client=acme", Rows: 100,
			Counts: map[row.Status]int{row.Created: 90, row.Exists: 5, row.Invalid: 3, row.Rejected: 1}},
	}
	p.Target.Runs = []ledger.RunRecord{p.Run, {ID: 6, SourceFile: "/data/old.csv", StartedAt: t0.Add(-time.Hour).Format(time.RFC3339Nano), Outcome: "crashed"}}
	p.Reasons, p.OtherReasons = reasons.Top(10)
	return p
}

func render(t *testing.T, p Page) string {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, p); err != nil {
		t.Fatalf("Write() = %v", err)
	}
	return b.String()
}

// The page must open with no network: nothing it loads, links to or
// imports.
func TestWrite_LoadsNothing(t *testing.T) {
	t.Parallel()
	page := render(t, testPage(40))
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "src=", "href=", "@import", "url(", "@font-face"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q: it must load nothing", bad)
		}
	}
}

func TestWrite_ChartsHaveAPointPerSample(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 40, 500} {
		page := render(t, testPage(n))
		if c := strings.Count(page, `<path class="series sent"`); c != 2 {
			t.Errorf("%d samples: %d paths of requests sent, want 2 (a wide chart and a narrow one)", n, c)
		}
		got := pathPoints(page)
		want := map[string]int{"sent": n, "limit": n, "throttled": n, "errors": n, "rows": n + 1, "created": n + 1}
		for class, w := range want {
			if got[class] != w {
				t.Errorf("%d samples: series %s has %d points, want %d", n, class, got[class], w)
			}
		}
	}
}

var pathRE = regexp.MustCompile(`<path class="series (\w+)" d="([^"]*)" data-points="(\d+)"`)

// pathPoints counts each chart series' points from its path data, and
// checks the count the path declares.
func pathPoints(page string) map[string]int {
	out := map[string]int{}
	for _, m := range pathRE.FindAllStringSubmatch(page, -1) {
		if out[m[1]] == -1 {
			continue
		}
		moves := strings.Count(m[2], "M") + strings.Count(m[2], "L")
		if m[1] == "limit" {
			moves /= 2 // a step: two points a sample
		}
		if n, _ := strconv.Atoi(m[3]); n != moves {
			out[m[1]] = -1
			continue
		}
		out[m[1]] = moves
	}
	return out
}

func TestWrite_Sections(t *testing.T) {
	t.Parallel()
	page := render(t, testPage(3))
	for _, want := range []string{
		"Run 7: <span class=\"outcome completed\">completed</span>",
		`<section id="counts">`, `<section id="rates">`, `<section id="reasons">`, `<section id="target">`,
		"has no domain with a dot", "old.csv", "crashed", "@media print", "viewBox=\"0 0 720 280\"", "viewBox=\"0 0 400 300\"",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "ana0@example") {
		t.Error("page names an email from a failure reason")
	}
}

func TestWrite_RunWithoutSamples(t *testing.T) {
	t.Parallel()
	p := testPage(0)
	p.Run.Outcome = "running"
	page := render(t, p)
	for _, want := range []string{"No time series was recorded", "still going"} {
		if !strings.Contains(page, want) {
			t.Errorf("page of a run without samples lacks %q", want)
		}
	}
	if strings.Contains(page, "<svg class=\"plot\"") {
		t.Error("page of a run without samples draws a chart")
	}
}

func TestReasons_TopGroupsAlikeRows(t *testing.T) {
	t.Parallel()
	p := testPage(1)
	want := []Reason{
		{Status: row.Invalid, Reason: `email: "…" has no domain with a dot`, Rows: 3},
		{Status: row.Rejected, Reason: "ripio: 400: invalid type", Rows: 1},
	}
	if len(p.Reasons) != len(want) || p.OtherReasons != 0 {
		t.Fatalf("Top(10) = %+v, %d others; want %+v", p.Reasons, p.OtherReasons, want)
	}
	for i := range want {
		if p.Reasons[i] != want[i] {
			t.Errorf("Top(10)[%d] = %+v, want %+v", i, p.Reasons[i], want[i])
		}
	}
	var r Reasons
	for i := range 5 {
		r.Add(ledger.Failure{Status: row.Failed, Reason: strconv.Itoa(i)})
	}
	if top, others := r.Top(2); len(top) != 2 || others != 3 {
		t.Errorf("Top(2) of 5 kinds = %d kinds, %d others; want 2, 3", len(top), others)
	}
}

func TestReasonKind(t *testing.T) {
	t.Parallel()
	tests := []struct{ reason, file, want string }{
		{`/d/in.csv:14: repeats line 2 (same email)`, "/d/in.csv", "repeats line N (same email)"},
		{`/d/in.csv:6: email: "Sofia <s@example.com>" is not a bare email address`, "/d/in.csv", `email: "…" is not a bare email address`},
		{`type: "COMPANY" is not INDIVIDUAL or BUSINESS`, "/d/in.csv", `type: "…" is not INDIVIDUAL or BUSINESS`},
		{`/d/in.csv is fine: 3 fields`, "/d/in.csv", `/d/in.csv is fine: 3 fields`}, // no line: left as is
		{"", "x.csv", "(no reason recorded)"},
	}
	for _, tt := range tests {
		if got := reasonKind(tt.reason, tt.file); got != tt.want {
			t.Errorf("reasonKind(%q, %q) = %q, want %q", tt.reason, tt.file, got, tt.want)
		}
	}
}

func TestNiceStep(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want float64 }{{0, 1}, {0.3, 0.5}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {12.5, 20}, {250, 500}}
	for _, tt := range tests {
		if got := niceStep(tt.in); got != tt.want {
			t.Errorf("niceStep(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 2, 0, 3, 0, time.UTC)
	tests := []struct {
		span      time.Duration
		wantFirst string
		maxTicks  int
	}{
		{20 * time.Second, "02:00:05", 7},
		{14 * time.Hour, "03:00", 7},
		{50 * time.Minute, "02:10", 7},
	}
	for _, tt := range tests {
		end := t0.Add(tt.span)
		x := func(t time.Time) float64 { return 640 * float64(t.Sub(t0)) / float64(tt.span) }
		ticks := timeTicks(t0, end, 7, x)
		if len(ticks) == 0 || len(ticks) > tt.maxTicks || ticks[0].Label != tt.wantFirst {
			t.Errorf("timeTicks over %v = %+v, want at most %d starting %s", tt.span, ticks, tt.maxTicks, tt.wantFirst)
		}
	}
}
