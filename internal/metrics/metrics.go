// Package metrics exposes a running import as Prometheus metrics.
//
// Two kinds of figures meet in one registry. The run's counts (rows by
// outcome, rows in flight, the rate limit in force) are read at scrape time
// from snapshot functions the command wires, so the importer and the limiter
// know nothing of Prometheus and pay nothing between scrapes. Each create
// request, in its class, and its latency come to [Metrics.Observe] from the
// importer, which has decided what the answer meant; [Metrics.Transport], a
// decorator of the API client's http.RoundTripper, counts the requests out.
//
// No label carries an email, a customer id, a URL or any other value taken
// from a row or a request: label values come from the fixed sets documented
// on each metric.
//
// A Metrics is safe for concurrent use.
package metrics

import (
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Rows is a snapshot of a run's rows.
type Rows struct {
	Read      int64 // data rows read from the input
	Created   int64
	Exists    int64
	Skipped   int64
	Invalid   int64
	Duplicate int64
	Rejected  int64
	Failed    int64
	InDoubt   int64
	// InFlight is the rows marked in flight in the ledger and not yet
	// finished: waiting for the limiter, or with a request out.
	InFlight int64
	// Pending is the rows read but neither in flight nor finished.
	Pending int64
	// Estimated is the input's data rows as estimated from the bytes read so
	// far; negative when unknown (standard input).
	Estimated int64
}

// Limit is a snapshot of the pool-wide rate limiter.
type Limit struct {
	Rate   float64       // requests per second in force; +Inf when unlimited
	Paused time.Duration // total time the pool was held by 429s
}

// Sources are the snapshots read at each scrape. A nil field leaves its
// metrics out.
type Sources struct {
	Rows func() Rows
	// Limit reports ok false when there is no limiter (a dry run).
	Limit func() (l Limit, ok bool)
}

// Metrics is one import's registry.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// byClass holds each class's series, looked up once: the transport then
	// pays no label hashing per request. Read-only after New.
	byClass map[string]classSeries
	done    atomic.Bool
}

type classSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// Request classes, the values of the class label.
const (
	ClassCreated      = "created"      // 2xx with a JSON object: the customer was made
	ClassNotAnswer    = "not_answer"   // 2xx that is not the create answer (a proxy's page): in doubt
	ClassExists       = "exists"       // the server already had it
	ClassRejected     = "rejected"     // a 4xx refusing the row
	ClassThrottled    = "throttled"    // 429
	ClassUnauthorized = "unauthorized" // 401, 403
	Class5xx          = "5xx"          // the server failed; it may have acted
	ClassTransport    = "transport"    // no complete answer: timeout, reset, refused
	ClassOther        = "other"        // 408, and 1xx/3xx that should never come
)

var classes = []string{ClassCreated, ClassNotAnswer, ClassExists, ClassRejected, ClassThrottled, ClassUnauthorized, Class5xx, ClassTransport, ClassOther}

// durationBuckets span a fast sandbox to the client's default 30 s timeout.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New returns a registry with the request metrics, the Go runtime's and the
// process's. Call Watch to add the run's counts.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkcreate_requests_total",
			Help: "Create customer requests by class of answer: created, exists, rejected, throttled, unauthorized, 5xx, transport, other.",
		}, []string{"class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulkcreate_request_duration_seconds",
			Help:    "Time from sending a create customer request to the end of its answer, by class.",
			Buckets: durationBuckets,
		}, []string{"class"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bulkcreate_requests_in_flight",
			Help: "Create customer requests sent and not yet answered.",
		}),
	}
	// Every class is exported from the start, at 0, so that rate() and
	// absent() see a series before the first request of that class.
	m.byClass = make(map[string]classSeries, len(classes))
	for _, c := range classes {
		m.byClass[c] = classSeries{requests: m.requests.WithLabelValues(c), duration: m.duration.WithLabelValues(c)}
	}
	m.reg.MustRegister(m.requests, m.duration, m.inFlight,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Watch adds the run's counts, read from src at every scrape. Call it once.
func (m *Metrics) Watch(src Sources) {
	m.reg.MustRegister(&runCollector{src: src, done: &m.done})
}

// Done marks the run ended: its counts are final from then on.
func (m *Metrics) Done() { m.done.Store(true) }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gatherer is the registry, for tests and other exporters.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

var (
	rowsReadDesc = prometheus.NewDesc("bulkcreate_rows_read_total",
		"Data rows read from the input file.", nil, nil)
	rowsDesc = prometheus.NewDesc("bulkcreate_rows_total",
		"Rows finished by this run, by outcome: created, exists, skipped, invalid, duplicate, rejected, failed, in_doubt.",
		[]string{"outcome"}, nil)
	rowsInFlightDesc = prometheus.NewDesc("bulkcreate_rows_in_flight",
		"Rows marked in flight in the ledger and not yet finished (waiting for the rate limit or with a request out).", nil, nil)
	rowsPendingDesc = prometheus.NewDesc("bulkcreate_rows_pending",
		"Rows read and not yet in flight nor finished.", nil, nil)
	rowsEstimatedDesc = prometheus.NewDesc("bulkcreate_rows_estimated",
		"Data rows of the input, estimated from the share of its bytes read; absent when the size is unknown (stdin).", nil, nil)
	rateDesc = prometheus.NewDesc("bulkcreate_rate_limit_requests_per_second",
		"Create requests per second the pool-wide limiter allows now; absent while there is no limit (--rps 0 before any 429).", nil, nil)
	pausedDesc = prometheus.NewDesc("bulkcreate_rate_limit_paused_seconds_total",
		"Time the whole pool was held by the server's 429s.", nil, nil)
	doneDesc = prometheus.NewDesc("bulkcreate_run_done",
		"1 once the import has ended and the counts are final, else 0.", nil, nil)
)

// runCollector turns the snapshots into metrics at scrape time: nothing is
// kept between scrapes, so a run that is not scraped pays nothing.
type runCollector struct {
	src  Sources
	done *atomic.Bool
}

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rowsReadDesc, rowsDesc, rowsInFlightDesc, rowsPendingDesc, rowsEstimatedDesc, rateDesc, pausedDesc, doneDesc} {
		ch <- d
	}
}

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	done := 0.0
	if c.done.Load() {
		done = 1
	}
	gauge(doneDesc, done)
	if c.src.Rows != nil {
		r := c.src.Rows()
		counter(rowsReadDesc, float64(r.Read))
		for _, o := range []struct {
			name string
			n    int64
		}{
			{"created", r.Created}, {"exists", r.Exists}, {"skipped", r.Skipped},
			{"invalid", r.Invalid}, {"duplicate", r.Duplicate}, {"rejected", r.Rejected},
			{"failed", r.Failed}, {"in_doubt", r.InDoubt},
		} {
			counter(rowsDesc, float64(o.n), o.name)
		}
		gauge(rowsInFlightDesc, float64(r.InFlight))
		gauge(rowsPendingDesc, float64(r.Pending))
		if r.Estimated >= 0 {
			gauge(rowsEstimatedDesc, float64(r.Estimated))
		}
	}
	if c.src.Limit != nil {
		if l, ok := c.src.Limit(); ok {
			// +Inf is valid in the exposition but draws no graph; a missing
			// series says "no limit" as well and is what absent() tests.
			if !math.IsInf(l.Rate, 0) && !math.IsNaN(l.Rate) {
				gauge(rateDesc, l.Rate)
			}
			counter(pausedDesc, l.Paused.Seconds())
		}
	}
}
