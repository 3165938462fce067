package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/metrics"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// metricsFlags are the Prometheus endpoint of an import or a worker.
type metricsFlags struct {
	addr   string
	linger time.Duration
}

func (f *metricsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "metrics-addr", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics, e.g. 127.0.0.1:9464 (off when empty; the host must be named: 0.0.0.0 for every interface)")
	fs.DurationVar(&f.linger, "metrics-linger", 0, "with --metrics-addr, keep serving this long after the run ends, so that a last scrape sees the final counts (a signal ends it)")
}

// checkMetricsAddr refuses an address whose host is left out: ":9464" binds
// every interface, which should be said, not implied. A named host, loopback
// or not, is the operator's choice; the metrics hold no personal data and
// no secret.
func checkMetricsAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %q: want HOST:PORT, e.g. 127.0.0.1:9464", addr)
	}
	if host == "" {
		return fmt.Errorf("--metrics-addr %q: name the host: 127.0.0.1%s for this machine only, 0.0.0.0%s for every interface", addr, addr, addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--metrics-addr %q: want a port number, e.g. 127.0.0.1:9464", addr)
	}
	return nil
}

// importMetrics is the metrics endpoint of one import or one worker. A nil
// *importMetrics (no --metrics-addr) does nothing, so that their code reads
// the same either way.
type importMetrics struct {
	m      *metrics.Metrics
	srv    *metrics.Server
	linger time.Duration
	stderr io.Writer
}

// start binds the endpoint before anything is sent, so that a port in use
// stops the run at once, and says where it is on stderr.
func (f *metricsFlags) start(stderr io.Writer) (*importMetrics, error) {
	if f.addr == "" {
		if f.linger != 0 {
			return nil, fmt.Errorf("--metrics-linger needs --metrics-addr, e.g. --metrics-addr 127.0.0.1:9464")
		}
		return nil, nil
	}
	if f.linger < 0 {
		return nil, fmt.Errorf("--metrics-linger %v: want 0 or more", f.linger)
	}
	if err := checkMetricsAddr(f.addr); err != nil {
		return nil, err
	}
	m := metrics.New()
	srv, err := metrics.Listen(f.addr, m)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "metrics at %s\n", srv.URL())
	return &importMetrics{m: m, srv: srv, linger: f.linger, stderr: stderr}, nil
}

// observer is importer.Config.Observe; nil without metrics.
func (x *importMetrics) observer() func(ripio.Verdict, time.Duration) {
	if x == nil {
		return nil
	}
	return x.observe
}

// observe is importer.Config.Observe: each create's verdict, counted in
// its metric class.
func (x *importMetrics) observe(v ripio.Verdict, took time.Duration) {
	x.m.Observe(metricClass(v), took)
}

// metricClass is the class label of a verdict: what ripio.Classify
// decided, with the answers that leave a row in doubt told apart by what
// came (a 5xx, no answer at all, or a 2xx that was not the create answer).
func metricClass(v ripio.Verdict) string {
	switch v.Outcome {
	case ripio.Created:
		return metrics.ClassCreated
	case ripio.Exists:
		return metrics.ClassExists
	case ripio.Rejected:
		return metrics.ClassRejected
	case ripio.Throttled:
		return metrics.ClassThrottled
	case ripio.Unauthorized:
		return metrics.ClassUnauthorized
	}
	switch s := v.HTTPStatus; {
	case s == 0:
		return metrics.ClassTransport
	case s >= 200 && s <= 299:
		return metrics.ClassNotAnswer
	case s >= 500:
		return metrics.Class5xx
	}
	return metrics.ClassOther
}

// wrapTransport is for ripio.Config.WrapTransport; nil without metrics.
func (x *importMetrics) wrapTransport() func(http.RoundTripper) http.RoundTripper {
	if x == nil {
		return nil
	}
	return x.m.Transport
}

// watch reads im's counts and its limiter's state at every scrape; size is
// the input's bytes, -1 when unknown.
func (x *importMetrics) watch(im *importer.Importer, size int64) {
	if x == nil {
		return
	}
	est := &progress{size: size} // only its estimate is used
	x.m.Watch(metrics.Sources{
		Rows: func() metrics.Rows {
			s := im.Progress()
			return metrics.Rows{
				Read: s.Read, Created: s.Created, Exists: s.Exists, Skipped: s.Skipped,
				Invalid: s.Invalid, Duplicate: s.Duplicate, Rejected: s.Rejected,
				Failed: s.Failed, InDoubt: s.InDoubt,
				InFlight: s.Pending, Pending: max(0, s.NotStarted()),
				Estimated: est.estimateRows(s),
			}
		},
		Limit: func() (metrics.Limit, bool) {
			l := im.Limiter()
			if l == nil {
				return metrics.Limit{}, false
			}
			st := l.Stats()
			return metrics.Limit{Rate: st.Rate, Paused: st.Paused}, true
		},
	})
}

// end marks the counts final and serves them for --metrics-linger, or
// until ctx is done.
func (x *importMetrics) end(ctx context.Context) {
	if x == nil {
		return
	}
	x.m.Done()
	if x.linger <= 0 {
		return
	}
	fmt.Fprintf(x.stderr, "metrics stay up %s for a last scrape (--metrics-linger); Ctrl-C ends the wait\n", x.linger)
	t := time.NewTimer(x.linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// close stops the endpoint, giving a scrape under way a moment to finish.
func (x *importMetrics) close() {
	if x == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	x.srv.Close(ctx)
}
