package metrics

import (
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// answer is a canned RoundTripper: the transport is tested without a
// network, on the exact bytes Ripio's answers carry.
type answer struct {
	status  int
	body    string
	err     error // from RoundTrip: no answer
	readErr error // after body: the answer breaks off
}

func (a answer) RoundTrip(req *http.Request) (*http.Response, error) {
	if a.err != nil {
		return nil, a.err
	}
	var body io.Reader = strings.NewReader(a.body)
	if a.readErr != nil {
		body = io.MultiReader(body, errReader{a.readErr})
	}
	return &http.Response{StatusCode: a.status, Body: io.NopCloser(body), Header: http.Header{}, Request: req}, nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestMetrics_ObserveCountsAndTimesByClass: each observed request counts
// once in its class, and its time in that class's histogram.
func TestMetrics_ObserveCountsAndTimesByClass(t *testing.T) {
	t.Parallel()
	m := New()
	m.Observe(ClassCreated, 30*time.Millisecond)
	m.Observe(ClassCreated, 50*time.Millisecond)
	m.Observe(ClassNotAnswer, 10*time.Millisecond)
	m.Observe("no such class", time.Millisecond)
	for class, want := range map[string]float64{ClassCreated: 2, ClassNotAnswer: 1, ClassOther: 1, ClassExists: 0} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(class)); got != want {
			t.Errorf("requests_total{class=%s} = %v, want %v", class, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != len(classes) {
		t.Errorf("duration series = %d, want %d", n, len(classes))
	}
}

// TestTransport_InFlightUntilClosed: a create request is in flight until
// its answer is closed, or at once over when no answer came; a token
// request is never counted.
func TestTransport_InFlightUntilClosed(t *testing.T) {
	t.Parallel()
	m := New()
	client := &http.Client{Transport: m.Transport(answer{status: 201, body: `{}`})}
	resp, err := client.Post("https://api.example/api/v1/customers/", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 1 {
		t.Errorf("requests_in_flight = %v before the answer is read, want 1", got)
	}
	tok, err := client.Post("https://api.example/oauth2/token/", "application/x-www-form-urlencoded", strings.NewReader(``))
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 1 {
		t.Errorf("requests_in_flight = %v with a token request out, want 1: token fetches are not creates", got)
	}
	tok.Body.Close()
	io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body.Close() // a second Close counts nothing more
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("requests_in_flight = %v, want 0", got)
	}
	failing := &http.Client{Transport: m.Transport(answer{err: errors.New("connection refused")})}
	if _, err := failing.Post("https://api.example/api/v1/customers/", "application/json", strings.NewReader(`{}`)); err == nil {
		t.Fatal("a transport that fails answered")
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("requests_in_flight = %v after a request with no answer, want 0", got)
	}
}

func TestCollector_ReadsSnapshotsAtScrape(t *testing.T) {
	t.Parallel()
	m := New()
	rows := Rows{Read: 10, Created: 4, Exists: 1, Skipped: 1, Invalid: 1, InFlight: 2, Pending: 1, Estimated: 100}
	limit := Limit{Rate: 20, Paused: 1500 * time.Millisecond}
	m.Watch(Sources{
		Rows:  func() Rows { return rows },
		Limit: func() (Limit, bool) { return limit, true },
	})
	const want = `
# HELP bulkcreate_rate_limit_paused_seconds_total Time the whole pool was held by the server's 429s.
# TYPE bulkcreate_rate_limit_paused_seconds_total counter
bulkcreate_rate_limit_paused_seconds_total 1.5
# HELP bulkcreate_rate_limit_requests_per_second Create requests per second the pool-wide limiter allows now; absent while there is no limit (--rps 0 before any 429).
# TYPE bulkcreate_rate_limit_requests_per_second gauge
bulkcreate_rate_limit_requests_per_second 20
# HELP bulkcreate_rows_estimated Data rows of the input, estimated from the share of its bytes read; absent when the size is unknown (stdin).
# TYPE bulkcreate_rows_estimated gauge
bulkcreate_rows_estimated 100
# HELP bulkcreate_rows_in_flight Rows marked in flight in the ledger and not yet finished (waiting for the rate limit or with a request out).
# TYPE bulkcreate_rows_in_flight gauge
bulkcreate_rows_in_flight 2
# HELP bulkcreate_rows_pending Rows read and not yet in flight nor finished.
# TYPE bulkcreate_rows_pending gauge
bulkcreate_rows_pending 1
# HELP bulkcreate_rows_read_total Data rows read from the input file.
# TYPE bulkcreate_rows_read_total counter
bulkcreate_rows_read_total 10
# HELP bulkcreate_rows_total Rows finished by this run, by outcome: created, exists, skipped, invalid, duplicate, rejected, failed, in_doubt.
# TYPE bulkcreate_rows_total counter
bulkcreate_rows_total{outcome="created"} 4
bulkcreate_rows_total{outcome="duplicate"} 0
bulkcreate_rows_total{outcome="exists"} 1
bulkcreate_rows_total{outcome="failed"} 0
bulkcreate_rows_total{outcome="in_doubt"} 0
bulkcreate_rows_total{outcome="invalid"} 1
bulkcreate_rows_total{outcome="rejected"} 0
bulkcreate_rows_total{outcome="skipped"} 1
# HELP bulkcreate_run_done 1 once the import has ended and the counts are final, else 0.
# TYPE bulkcreate_run_done gauge
bulkcreate_run_done 0
`
	names := []string{"bulkcreate_rate_limit_paused_seconds_total", "bulkcreate_rate_limit_requests_per_second",
		"bulkcreate_rows_estimated", "bulkcreate_rows_in_flight", "bulkcreate_rows_pending",
		"bulkcreate_rows_read_total", "bulkcreate_rows_total", "bulkcreate_run_done"}
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// Later scrapes read the snapshots anew; no limit and no size leave
	// their series out rather than export +Inf or -1.
	rows.Created, rows.Estimated = 5, -1
	limit.Rate = math.Inf(1)
	m.Done()
	if n, err := testutil.GatherAndCount(m.Gatherer(), "bulkcreate_rows_estimated", "bulkcreate_rate_limit_requests_per_second"); err != nil || n != 0 {
		t.Errorf("series for an unknown size and no limit = %d, %v; want 0", n, err)
	}
	const after = `
# HELP bulkcreate_run_done 1 once the import has ended and the counts are final, else 0.
# TYPE bulkcreate_run_done gauge
bulkcreate_run_done 1
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(after), "bulkcreate_run_done"); err != nil {
		t.Error(err)
	}
	if got, _ := testutil.GatherAndCount(m.Gatherer(), "bulkcreate_rows_total"); got != 8 {
		t.Errorf("bulkcreate_rows_total series = %d, want 8", got)
	}
}

// TestMetrics_FollowNamingConventions runs Prometheus' own linter over
// every metric bulkcreate defines.
func TestMetrics_FollowNamingConventions(t *testing.T) {
	t.Parallel()
	m := New()
	m.Watch(Sources{
		Rows:  func() Rows { return Rows{Estimated: 1} },
		Limit: func() (Limit, bool) { return Limit{Rate: 1}, true },
	})
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "bulkcreate_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// TestMetrics_DocsNameWhatIsExported checks the README and the Grafana
// dashboard against the registry: every bulkcreate_ metric they name is
// exported, and the README names every one.
func TestMetrics_DocsNameWhatIsExported(t *testing.T) {
	t.Parallel()
	m := New()
	m.Watch(Sources{
		Rows:  func() Rows { return Rows{Estimated: 1} },
		Limit: func() (Limit, bool) { return Limit{Rate: 1}, true },
	})
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "bulkcreate_") {
			exported[f.GetName()] = true
		}
	}
	name := regexp.MustCompile(`bulkcreate_[a-z_]+`)
	for _, doc := range []string{"../../README.md", "../../docs/grafana-dashboard.json"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		named := map[string]bool{}
		for _, n := range name.FindAllString(string(b), -1) {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if base, ok := strings.CutSuffix(n, suffix); ok && exported[base] {
					n = base
				}
			}
			named[n] = true
			if !exported[n] {
				t.Errorf("%s names %s, which is not exported", doc, n)
			}
		}
		if strings.HasSuffix(doc, "README.md") {
			for n := range exported {
				if !named[n] {
					t.Errorf("%s does not describe %s", doc, n)
				}
			}
		}
	}
}
