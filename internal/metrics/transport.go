package metrics

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// createPath ends the URL of Ripio's Create Customer, the only call counted:
// token fetches are a handful a run and would blur the creates' classes.
const createPath = "/api/v1/customers/"

// maxKeep bounds how much of an error answer is kept to classify it; Ripio's
// error envelope is a few hundred bytes.
const maxKeep = 64 << 10

// Transport returns next wrapped to count create requests by class and
// time them. A request is observed when its answer's body is closed (the
// client reads error answers whole first), or when no answer came.
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
	start := time.Now()
	t.m.inFlight.Inc()
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.m.observe(ClassTransport, start)
		return resp, err
	}
	keep := maxKeep // an error answer: its text decides "exists"
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		keep = 16 // a 2xx: is it a JSON object at all
	}
	resp.Body = &observedBody{ReadCloser: resp.Body, m: t.m, start: start, status: resp.StatusCode, keep: keep}
	return resp, nil
}

func (m *Metrics) observe(class string, start time.Time) {
	m.inFlight.Dec()
	s := m.byClass[class]
	s.requests.Inc()
	s.duration.Observe(time.Since(start).Seconds())
}

// observedBody classifies its request on Close, once the client has read
// what it needs.
type observedBody struct {
	io.ReadCloser
	m      *Metrics
	start  time.Time
	status int
	keep   int    // how much of the answer's start to keep
	text   []byte // the answer's start
	broken bool   // reading the answer failed
	once   sync.Once
}

func (b *observedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if len(b.text) < b.keep {
		b.text = append(b.text, p[:min(n, b.keep-len(b.text))]...)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		b.broken = true
	}
	return n, err
}

func (b *observedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.m.observe(classOf(b.status, b.text, b.broken), b.start) })
	return err
}

// classOf names the class of an answer. ripio.Classify decides, as it does
// for the importer; the raw body stands in for the decoded error message,
// which it contains.
func classOf(status int, body []byte, broken bool) string {
	if status >= 200 && status <= 299 {
		// Only a JSON object can be the create answer: a proxy's page or an
		// empty body leaves the row in doubt, as ripio's answer check does.
		// A body that breaks off may still have been the answer.
		if t := bytes.TrimSpace(body); broken || (len(t) > 0 && t[0] == '{') {
			return ClassCreated
		}
		return ClassNotAnswer
	}
	if broken {
		return ClassTransport // the client reports a cut error answer as no answer
	}
	v := ripio.Classify(&ripio.APIError{Status: status, Message: string(body)})
	switch v.Outcome {
	case ripio.Exists:
		return ClassExists
	case ripio.Rejected:
		return ClassRejected
	case ripio.Throttled:
		return ClassThrottled
	case ripio.Unauthorized:
		return ClassUnauthorized
	}
	if status >= 500 {
		return Class5xx
	}
	return ClassOther
}
