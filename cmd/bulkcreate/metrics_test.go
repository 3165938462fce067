package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bulkcreate/bulkcreate/internal/metrics"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestMetrics_ScrapedDuringImport runs an import against a sandbox that
// throttles, scrapes its metrics while it runs and once it has ended, and
// checks them against the run's own summary.
func TestMetrics_ScrapedDuringImport(t *testing.T) {
	t.Parallel()
	const rows = 400
	_, env := newServer(t, sandbox.Options{RateLimit: 150, RetryAfter: true, Latency: 2 * time.Millisecond})
	dir := t.TempDir()
	data, emails := genRows(rows)
	in := writeFile(t, dir, "in.csv", data)
	sumPath := filepath.Join(dir, "summary.json")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	runErr := make(chan error, 1)
	go func() {
		runErr <- run(ctx, []string{"import", "--quiet", "--rps", "300", "--ledger", filepath.Join(dir, "l.db"),
			"--summary-json", sumPath, "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "1m", in},
			func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, stderr)
	}()
	url := waitMetricsURL(t, stderr, runErr)

	// While it runs: the run's gauges are there and the counts are not final.
	var running map[string]*dto.MetricFamily
	for deadline := time.Now().Add(30 * time.Second); ; {
		running = scrape(t, url)
		if metricValue(running, "bulkcreate_run_done") == 0 && metricValue(running, "bulkcreate_rows_read_total") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scrape saw the import under way")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, name := range []string{"bulkcreate_rows_in_flight", "bulkcreate_rows_pending", "bulkcreate_rows_estimated",
		"bulkcreate_rate_limit_requests_per_second", "bulkcreate_rate_limit_paused_seconds_total", "bulkcreate_requests_in_flight"} {
		if running[name] == nil {
			t.Errorf("scrape during the import has no %s", name)
		}
	}

	var final map[string]*dto.MetricFamily
	for deadline := time.Now().Add(60 * time.Second); ; {
		final = scrape(t, url)
		if metricValue(final, "bulkcreate_run_done") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the import did not end")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel() // ends the linger
	if err := <-runErr; err != nil {
		t.Fatalf("import: %v\n%s", err, stderr)
	}
	var sum struct {
		Requests, Throttled int64
		Counts              struct{ Created, Read int64 }
	}
	b, err := os.ReadFile(sumPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Counts.Created != rows {
		t.Fatalf("summary: created %d, want %d", sum.Counts.Created, rows)
	}

	checks := []struct {
		what      string
		got, want float64
	}{
		{`bulkcreate_rows_total{outcome="created"}`, metricValue(final, "bulkcreate_rows_total", "outcome", "created"), float64(sum.Counts.Created)},
		{`bulkcreate_requests_total{class="created"}`, metricValue(final, "bulkcreate_requests_total", "class", "created"), float64(sum.Counts.Created)},
		{`bulkcreate_requests_total{class="throttled"}`, metricValue(final, "bulkcreate_requests_total", "class", "throttled"), float64(sum.Throttled)},
		{"sum(bulkcreate_requests_total)", metricValue(final, "bulkcreate_requests_total"), float64(sum.Requests)},
		{"sum(bulkcreate_request_duration_seconds_count)", histogramCount(final, "bulkcreate_request_duration_seconds"), float64(sum.Requests)},
		{"bulkcreate_rows_read_total", metricValue(final, "bulkcreate_rows_read_total"), float64(sum.Counts.Read)},
		{"bulkcreate_rows_estimated", metricValue(final, "bulkcreate_rows_estimated"), rows},
		{"bulkcreate_rows_in_flight", metricValue(final, "bulkcreate_rows_in_flight"), 0},
		{"bulkcreate_rows_pending", metricValue(final, "bulkcreate_rows_pending"), 0},
		{"bulkcreate_requests_in_flight", metricValue(final, "bulkcreate_requests_in_flight"), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if sum.Throttled == 0 {
		t.Log("the sandbox throttled nothing: the throttled class was checked at 0 only")
	}
	if r := metricValue(final, "bulkcreate_rate_limit_requests_per_second"); r <= 0 || r > 300 {
		t.Errorf("bulkcreate_rate_limit_requests_per_second = %v, want in (0, 300]", r)
	}

	// No label may carry a row's data.
	for _, fams := range []map[string]*dto.MetricFamily{running, final} {
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if strings.Contains(l.GetValue(), "@") || strings.Contains(l.GetValue(), emails[0]) {
						t.Errorf("%s has label %s=%q: personal data in a label", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

func TestMetrics_AddrRefused(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // not defer: the parallel subtests run after this function returns
	dir := t.TempDir()
	in := writeFile(t, dir, "in.csv", "email,type\na@example.com,INDIVIDUAL\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"NoHost", []string{"--metrics-addr", ":9464"}, "name the host: 127.0.0.1:9464"},
		{"NoPort", []string{"--metrics-addr", "127.0.0.1"}, "want HOST:PORT"},
		{"NamedPort", []string{"--metrics-addr", "127.0.0.1:http"}, "want a port number"},
		{"PortInUse", []string{"--metrics-addr", busy.Addr().String()}, "address already in use"},
		{"LingerAlone", []string{"--metrics-linger", "10s"}, "--metrics-linger needs --metrics-addr"},
		{"LingerNegative", []string{"--metrics-addr", "127.0.0.1:0", "--metrics-linger", "-1s"}, "want 0 or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"import", "--dry-run", "--ledger", filepath.Join(dir, tt.name+".db")}, tt.args...)
			err := run(context.Background(), append(args, in),
				func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("import %v = %v, want exit %d saying %q", tt.args, err, exitUsage, tt.want)
			}
		})
	}
}

func TestMetrics_AddrAccepted(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:9464", "localhost:0", "[::1]:9464", "0.0.0.0:9464", "10.1.2.3:9464"} {
		if err := checkMetricsAddr(addr); err != nil {
			t.Errorf("checkMetricsAddr(%q) = %v, want nil", addr, err)
		}
	}
}

// syncBuffer is stderr for an import running in-process while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var metricsURLLine = regexp.MustCompile(`metrics at (http://\S+)`)

func waitMetricsURL(t *testing.T, stderr *syncBuffer, runErr <-chan error) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := metricsURLLine.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-runErr:
			t.Fatalf("import ended before serving metrics: %v\n%s", err, stderr)
		default:
		}
	}
	t.Fatalf("import did not say where its metrics are:\n%s", stderr)
	return ""
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

// metricValue sums the counter or gauge name over the series whose labels
// include the name-value pairs given.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	var v float64
	for _, m := range fams[name].GetMetric() {
		if hasLabels(m, labels) {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return v
}

func histogramCount(fams map[string]*dto.MetricFamily, name string) float64 {
	var n float64
	for _, m := range fams[name].GetMetric() {
		n += float64(m.GetHistogram().GetSampleCount())
	}
	return n
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestMetricClass: the class label is what the importer decided of the
// answer: a 2xx page counts not_answer, never created.
func TestMetricClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v    ripio.Verdict
		want string
	}{
		{ripio.Verdict{Outcome: ripio.Created, HTTPStatus: 201}, metrics.ClassCreated},
		{ripio.Verdict{Outcome: ripio.Exists, HTTPStatus: 400}, metrics.ClassExists},
		{ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 400}, metrics.ClassRejected},
		{ripio.Verdict{Outcome: ripio.Throttled, HTTPStatus: 429}, metrics.ClassThrottled},
		{ripio.Verdict{Outcome: ripio.Unauthorized, HTTPStatus: 401}, metrics.ClassUnauthorized},
		{ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 200}, metrics.ClassNotAnswer},
		{ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 503}, metrics.Class5xx},
		{ripio.Verdict{Outcome: ripio.InDoubt}, metrics.ClassTransport},
		{ripio.Verdict{Outcome: ripio.NotSent}, metrics.ClassTransport},
		{ripio.Verdict{Outcome: ripio.NotSent, HTTPStatus: 408}, metrics.ClassOther},
	}
	for _, tt := range tests {
		if got := metricClass(tt.v); got != tt.want {
			t.Errorf("metricClass(%s, HTTP %d) = %q, want %q", tt.v.Outcome, tt.v.HTTPStatus, got, tt.want)
		}
	}
}

// TestMetrics_ScrapedDuringWorkerRun: a worker serves the import's metrics
// with --metrics-addr: its request counters move while it sends the rows
// an import --detach queued, and end at the rows it created.
func TestMetrics_ScrapedDuringWorkerRun(t *testing.T) {
	t.Parallel()
	ledgerURL, _ := postgresLedgerURL(t)
	const rows = 150
	dir := t.TempDir()
	_, env := newServer(t, sandbox.Options{Latency: 2 * time.Millisecond})
	env[ledgerEnv] = ledgerURL
	data, _ := genRows(rows)
	writeFile(t, dir, "in.csv", data)
	if r := runBin(t, dir, env, "", "import", "--detach", "--rps", "100", "in.csv"); r.code != 0 {
		t.Fatalf("import --detach: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	runErr := make(chan error, 1)
	go func() {
		runErr <- run(ctx, []string{"worker", "--exit-when-idle", "--quiet", "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "1m"},
			func(k string) string { return env[k] }, strings.NewReader(""), io.Discard, stderr)
	}()
	url := waitMetricsURL(t, stderr, runErr)
	var running map[string]*dto.MetricFamily
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		running = scrape(t, url)
		if n := metricValue(running, "bulkcreate_requests_total"); n > 0 && n < rows && metricValue(running, "bulkcreate_run_done") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scrape saw the worker's requests under way")
		}
	}
	var final map[string]*dto.MetricFamily
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		final = scrape(t, url)
		if metricValue(final, "bulkcreate_run_done") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker did not end")
		}
	}
	cancel() // ends the linger
	if err := <-runErr; err != nil {
		t.Fatalf("worker: %v\n%s", err, stderr)
	}
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{`bulkcreate_requests_total{class="created"}`, metricValue(final, "bulkcreate_requests_total", "class", "created"), rows},
		{`bulkcreate_rows_total{outcome="created"}`, metricValue(final, "bulkcreate_rows_total", "outcome", "created"), rows},
		{"sum(bulkcreate_request_duration_seconds_count)", histogramCount(final, "bulkcreate_request_duration_seconds"), metricValue(final, "bulkcreate_requests_total")},
		{"bulkcreate_requests_in_flight", metricValue(final, "bulkcreate_requests_in_flight"), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}
