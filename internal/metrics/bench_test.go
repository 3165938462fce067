package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkTransport is what observing one create costs, without a network:
// the canned answer alone ("bare") against the same wrapped ("observed").
// Set against the CPU an import spends per row (BENCHMARKS.md, §7), it
// bounds the metrics' share of it.
func BenchmarkTransport(b *testing.B) {
	req, err := http.NewRequest(http.MethodPost, "https://api.example/api/v1/customers/", nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		rt   func(http.RoundTripper) http.RoundTripper
	}{
		{"bare", func(rt http.RoundTripper) http.RoundTripper { return rt }},
		{"observed", New().Transport},
	} {
		for _, a := range []struct {
			name string
			a    answer
		}{
			{"Created", answer{status: 201, body: `{"customerId":"c1","email":"a@example.com","type":"INDIVIDUAL"}`}},
			{"Exists", answer{status: 400, body: `{"code":20000,"type":"ValidationError","detail":{"message":"email already exists"},"status":400}`}},
		} {
			b.Run(bc.name+"/"+a.name, func(b *testing.B) {
				rt := bc.rt(a.a)
				b.ReportAllocs()
				for b.Loop() {
					resp, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
}

// BenchmarkScrape is one scrape of a run's registry: the run's snapshots,
// the request metrics, and the Go runtime's and the process's collectors.
func BenchmarkScrape(b *testing.B) {
	m := New()
	m.Watch(Sources{
		Rows:  func() Rows { return Rows{Read: 1e6, Created: 1e6, Estimated: 1e6} },
		Limit: func() (Limit, bool) { return Limit{Rate: 20}, true },
	})
	h := m.Handler()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
