package metrics

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// createPath ends the URL of Ripio's Create Customer, the only call counted:
// token fetches are a handful a run and would blur the creates' classes.
const createPath = "/api/v1/customers/"

// Transport returns next wrapped to count the create requests out at once
// (bulkcreate_requests_in_flight): a request is out until its answer's
// body is closed, or no answer came. What each request meant is not the
// transport's to say: the importer reports its verdict to Observe.
func (m *Metrics) Transport(next http.RoundTripper) http.RoundTripper {
	return &transport{m: m, next: next}
}

type transport struct {
	m    *Metrics
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, createPath) {
		return t.next.RoundTrip(req)
	}
	t.m.inFlight.Inc()
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.m.inFlight.Dec()
		return resp, err
	}
	resp.Body = &outBody{ReadCloser: resp.Body, m: t.m}
	return resp, nil
}

// outBody ends its request's time in flight on Close.
type outBody struct {
	io.ReadCloser
	m    *Metrics
	once sync.Once
}

func (b *outBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.m.inFlight.Dec)
	return err
}

// Observe counts one create request of class and the time it took, from
// sending it to its answer read (or the failure to get one).
func (m *Metrics) Observe(class string, took time.Duration) {
	s, ok := m.byClass[class]
	if !ok {
		s = m.byClass[ClassOther]
	}
	s.requests.Inc()
	s.duration.Observe(took.Seconds())
}
