package runreport

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A chart is drawn twice, for a wide page (and print) and for a phone,
// where a wide chart would shrink to a strip with tiny text; CSS shows one.
// Sizes are SVG user units; the page scales them to its width.
type layout struct {
	Class    string // wide or narrow
	W, H     int
	MaxTicks int // time labels at most
}

var (
	wide   = layout{Class: "wide", W: 720, H: 280, MaxTicks: 7}
	narrow = layout{Class: "narrow", W: 400, H: 300, MaxTicks: 4}
)

const padLeft, padRight, padTop, padBottom = 76, 16, 12, 40

// chart is an SVG line chart of series over a run's time, ready for the
// template: every coordinate is computed here.
type chart struct {
	ID     string // for aria-labelledby
	Class  string // the layout's
	Title  string
	Desc   string // what the chart shows, for screen readers and print
	YLabel string
	W, H   int
	// The plot area.
	Left, Top, Right, Bottom float64
	XTicks, YTicks           []tick
	Series                   []series
}

type tick struct {
	Pos   float64 // x for XTicks, y for YTicks
	Label string
}

// series is one line: D is its path, Points how many points it joins.
type series struct {
	Name   string
	Class  string // CSS class: colour and dash
	D      string
	Points int
	Marks  []point // drawn as dots when the series is short
}

type point struct{ X, Y float64 }

// line is the data of one series: values at times, NaN for a break.
type line struct {
	name, class string
	at          []time.Time
	v           []float64
	step        []time.Duration // when set, each value holds from at for step: a step line
	// quietZeros: no dot on a zero value (a count of trouble that is mostly
	// zero would line the axis with dots).
	quietZeros bool
}

// newChart lays out lines over [from, to] in lay. y starts at 0.
func newChart(lay layout, id, title, desc, yLabel string, from, to time.Time, lines []line) chart {
	c := chart{ID: id + "-" + lay.Class, Class: lay.Class, Title: title, Desc: desc, YLabel: yLabel, W: lay.W, H: lay.H,
		Left: padLeft, Top: padTop, Right: float64(lay.W - padRight), Bottom: float64(lay.H - padBottom)}
	if !to.After(from) {
		to = from.Add(time.Second)
	}
	ymax := 0.0
	for _, l := range lines {
		for _, v := range l.v {
			if !math.IsNaN(v) {
				ymax = max(ymax, v)
			}
		}
	}
	step := niceStep(ymax * 1.05 / 5)
	top := step * math.Max(1, math.Ceil(ymax*1.05/step))
	x := func(t time.Time) float64 {
		return c.Left + (c.Right-c.Left)*float64(t.Sub(from))/float64(to.Sub(from))
	}
	y := func(v float64) float64 { return c.Bottom - (c.Bottom-c.Top)*v/top }
	for i, v := 0, 0.0; v <= top*(1+1e-9); i, v = i+1, float64(i+1)*step {
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: formatNumber(v)})
	}
	c.XTicks = timeTicks(from, to, lay.MaxTicks, x)
	for _, l := range lines {
		s := series{Name: l.name, Class: l.class}
		var b strings.Builder
		pen := false
		for i, v := range l.v {
			if math.IsNaN(v) {
				pen = false
				continue
			}
			px, py := x(l.at[i]), y(v)
			if pen {
				b.WriteString(" L")
			} else {
				if b.Len() > 0 {
					b.WriteByte(' ')
				}
				b.WriteString("M")
			}
			fmt.Fprintf(&b, "%s %s", coord(px), coord(py))
			s.Points++
			if l.step != nil {
				fmt.Fprintf(&b, " L%s %s", coord(x(l.at[i].Add(l.step[i]))), coord(py))
			}
			if v != 0 || !l.quietZeros {
				s.Marks = append(s.Marks, point{px, py})
			}
			pen = true
		}
		if s.Points == 0 {
			continue
		}
		s.D = b.String()
		if s.Points > 60 || l.step != nil {
			s.Marks = nil
		}
		c.Series = append(c.Series, s)
	}
	return c
}

func coord(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// niceStep is the smallest of 1, 2, 5 times a power of ten that is at least
// v (1 for v <= 0).
func niceStep(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func formatNumber(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// tickSteps are the times between labels on the time axis.
var tickSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// timeTicks labels [from, to] in UTC clock time, at most maxTicks labels,
// on whole multiples of a step from tickSteps.
func timeTicks(from, to time.Time, maxTicks int, x func(time.Time) float64) []tick {
	span := to.Sub(from)
	step := tickSteps[len(tickSteps)-1]
	for _, s := range tickSteps {
		if int(span/s) < maxTicks {
			step = s
			break
		}
	}
	format := "15:04"
	if step < time.Minute {
		format = "15:04:05"
	}
	var ticks []tick
	for t := from.Truncate(step); !t.After(to); t = t.Add(step) {
		if t.Before(from) || x(t) > x(to)-36 {
			continue // a label there would stick out of the chart
		}
		ticks = append(ticks, tick{Pos: x(t), Label: t.UTC().Format(format)})
	}
	return ticks
}
