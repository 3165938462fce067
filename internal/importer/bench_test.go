//go:build unix

package importer_test

// The benchmarks of issue 8, figures 1 to 3. Each reports its figure as a
// ratio of two measures taken in the same run, so that the noise of a shared
// machine cancels; the absolute rates are reported beside it. One iteration
// is a whole scenario (seconds to tens of seconds): run them with
// -benchtime=1x. BENCHMARKS.md has the commands and the last figures.
// (unix only: the ceiling reads the process's CPU time with getrusage.)
//
//	go test -run '^$' -bench . -benchtime=1x -count=2 -timeout 30m ./internal/importer/

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// ceilingConcurrency lists the concurrencies BenchmarkImport_Ceiling tries;
// one value is handy under -trace or -cpuprofile.
var ceilingConcurrency = flag.String("ceiling.concurrency", "16,32,64,128",
	"comma-separated concurrencies for BenchmarkImport_Ceiling")

// benchImportTimeout bounds one import of a benchmark: a stuck run fails
// the benchmark instead of holding the machine.
const benchImportTimeout = 5 * time.Minute

// startBenchServer starts a fake Ripio server that tb's cleanup closes.
func startBenchServer(tb testing.TB, opts sandbox.Options) *sandbox.Server {
	tb.Helper()
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		tb.Fatalf("sandbox.NewServer: %v", err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

// benchImport imports data into srv the way the import command does: a
// fresh client, a limiter at rps with burst 1, and a new ledger file in a
// temporary directory. It returns the summary, the wall time of Import
// alone (the ledger's open and close are outside it) and the limiter's
// state at the end.
func benchImport(tb testing.TB, srv *sandbox.Server, data string, rps float64, concurrency int) (importer.Summary, time.Duration, ratelimit.Stats) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchImportTimeout)
	defer cancel()
	client, err := ripio.New(ripio.Config{BaseURL: srv.URL(), ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(), Timeout: 30 * time.Second})
	if err != nil {
		tb.Fatalf("ripio.New: %v", err)
	}
	var (
		sum     importer.Summary
		elapsed time.Duration
		limiter = ratelimit.New(ratelimit.Config{Rate: rps, Burst: 1})
	)
	// The label, inherited by every goroutine started inside (the ledger's
	// writer, the pool, the transport's), lets a CPU profile tell the
	// import's work from the fake server's: go tool pprof -tagfocus side=import.
	pprof.Do(ctx, pprof.Labels("side", "import"), func(ctx context.Context) {
		var l *ledger.Ledger
		l, err = ledger.Open(ctx, filepath.Join(tb.TempDir(), "ledger.db"), ledger.Options{})
		if err != nil {
			err = fmt.Errorf("ledger.Open: %w", err)
			return
		}
		defer l.Close()
		im := importer.New(importer.Config{SourceFile: "bench.csv", Concurrency: concurrency},
			client, limiter, importer.Ledger(l), "bench-target")
		start := time.Now()
		sum, err = im.Import(ctx, strings.NewReader(data))
		elapsed = time.Since(start)
	})
	if err != nil {
		tb.Fatalf("Import: %v (%+v)", err, sum.Counts)
	}
	if ctx.Err() != nil {
		tb.Fatalf("Import did not finish within %v: %+v", benchImportTimeout, sum.Counts)
	}
	return sum, elapsed, limiter.Stats()
}

// BenchmarkImport_RateEfficiency is figure 1: 2,000 rows at 200/s against a
// server answering in 20-80ms, with the concurrency the import command
// picks for --rps 200 (ceil(200*0.1*2) = 40). efficiency is rows created
// per second of Import's wall time over the configured 200/s; target >= 0.98
// with no 429.
func BenchmarkImport_RateEfficiency(b *testing.B) {
	const (
		rows        = 2000
		rps         = 200.0
		concurrency = 40
	)
	var effSum, throttled float64
	for i := 0; i < b.N; i++ {
		srv := startBenchServer(b, sandbox.Options{Latency: 20 * time.Millisecond, LatencyJitter: 60 * time.Millisecond})
		data, _ := genCSV(rows, fmt.Sprintf("rate%d-", i))
		sum, elapsed, _ := benchImport(b, srv, data, rps, concurrency)
		if sum.Created != rows {
			b.Errorf("created = %d, want %d (%+v)", sum.Created, rows, sum.Counts)
		}
		achieved := float64(sum.Created) / elapsed.Seconds()
		effSum += achieved / rps
		throttled += float64(srv.Stats().Throttled)
		b.Logf("run %d: %d rows in %v: %.2f/s of %.0f/s = %.4f; 429s %d; ideal wall (rows-1)/rps = %v",
			i, sum.Created, elapsed.Round(time.Millisecond), achieved, rps, achieved/rps, srv.Stats().Throttled,
			time.Duration(float64(rows-1)/rps*float64(time.Second)))
	}
	b.ReportMetric(effSum/float64(b.N), "efficiency")
	b.ReportMetric(throttled/float64(b.N), "429s/op")
}

// BenchmarkImport_Adaptive is figure 2: a server limited to 100/s (burst
// 10), the client's ceiling at 400/s, 2,000 rows, concurrency 64 as in
// TestImport_FindsTheServersLimitWithFew429s. of_limit is rows created per
// second of wall time over the server's 100/s (target >= 0.90); throttled is
// the share of create requests answered 429 (target <= 0.02). Run with and
// without Retry-After on the 429s.
func BenchmarkImport_Adaptive(b *testing.B) {
	const (
		rows        = 2000
		serverRate  = 100.0
		clientRate  = 400.0
		concurrency = 64
	)
	for _, retryAfter := range []bool{true, false} {
		name := "RetryAfter"
		if !retryAfter {
			name = "NoRetryAfter"
		}
		b.Run(name, func(b *testing.B) {
			var ofLimit, share float64
			for i := 0; i < b.N; i++ {
				srv := startBenchServer(b, sandbox.Options{RateLimit: serverRate, RetryAfter: retryAfter})
				data, _ := genCSV(rows, fmt.Sprintf("adapt%d-", i))
				sum, elapsed, lim := benchImport(b, srv, data, clientRate, concurrency)
				if sum.Created != rows {
					b.Errorf("created = %d, want %d (%+v)", sum.Created, rows, sum.Counts)
				}
				st := srv.Stats()
				achieved := float64(st.Created) / elapsed.Seconds()
				ofLimit += achieved / serverRate
				share += float64(st.Throttled) / float64(st.Requests)
				b.Logf("run %d: %d created in %v: %.2f/s = %.4f of the limit; %d of %d requests throttled (%.2f%%); limiter at the end: %.1f/s, paused %v",
					i, st.Created, elapsed.Round(time.Millisecond), achieved, achieved/serverRate,
					st.Throttled, st.Requests, 100*float64(st.Throttled)/float64(st.Requests), lim.Rate, lim.Paused.Round(time.Millisecond))
			}
			b.ReportMetric(ofLimit/float64(b.N), "of_limit")
			b.ReportMetric(share/float64(b.N), "throttled")
		})
	}
}

// BenchmarkImport_Ceiling is figure 3: with no client-side limit, 30,000
// rows through the whole import (CSV, validation, ledger, client) against
// the create rate of a bare net/http client on the same server in the same
// run (one token, N goroutines posting JSON; no CSV, no ledger). Both are
// tried at each concurrency; of_bare is the best import over the best bare
// client (target >= 0.6). The two alternate per concurrency so that drift
// of the machine hits both. The fake server runs in this process, so its
// CPU is in both measures.
//
// The process's CPU time per row is reported beside: when the machine is
// shared, other work moves the rates, much less the CPU per row, and
// cpu_of_bare (bare CPU per row over import CPU per row) is what of_bare
// would be if both were CPU-bound.
func BenchmarkImport_Ceiling(b *testing.B) {
	const (
		rows         = 30000
		bareRequests = 30000
		bareMaxTime  = 20 * time.Second
	)
	var concurrencies []int
	for _, f := range strings.Split(*ceilingConcurrency, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > 1024 {
			b.Fatalf("-ceiling.concurrency %q: want numbers from 1 to 1024", *ceilingConcurrency)
		}
		concurrencies = append(concurrencies, c)
	}
	var ofBare, cpuOfBare float64
	for i := 0; i < b.N; i++ {
		var bestBare, bestImport float64
		var bestBareAt, bestImportAt int
		var bareCPU, importCPU time.Duration
		var bareRows, importRows int64
		for _, c := range concurrencies {
			// A fresh server for each concurrency, shared by the pair: the
			// fake keeps every customer in this process's heap, and a heap
			// grown by earlier rounds would make later rounds' garbage
			// collections dearer.
			srv := startBenchServer(b, sandbox.Options{})
			runtime.GC()
			cpu0 := processCPU(b)
			bare, n := bareCreateRate(b, srv, c, bareRequests, bareMaxTime, fmt.Sprintf("bare%d-%d-", i, c))
			bareCPU += processCPU(b) - cpu0
			bareRows += n

			data, _ := genCSV(rows, fmt.Sprintf("ceil%d-%d-", i, c))
			cpu0 = processCPU(b)
			sum, elapsed, _ := benchImport(b, srv, data, 0, c)
			importCPU += processCPU(b) - cpu0
			importRows += sum.Created
			if sum.Created != rows {
				b.Errorf("concurrency %d: created = %d, want %d (%+v)", c, sum.Created, rows, sum.Counts)
			}
			imp := float64(sum.Created) / elapsed.Seconds()
			b.Logf("run %d, concurrency %d: bare client %.0f creates/s, import %.0f rows/s (%v), ratio %.3f",
				i, c, bare, imp, elapsed.Round(time.Millisecond), imp/bare)
			b.ReportMetric(bare, fmt.Sprintf("bare_c%d_rows/s", c))
			b.ReportMetric(imp, fmt.Sprintf("import_c%d_rows/s", c))
			if bare > bestBare {
				bestBare, bestBareAt = bare, c
			}
			if imp > bestImport {
				bestImport, bestImportAt = imp, c
			}
			srv.Close()
		}
		bareUS := float64(bareCPU.Microseconds()) / float64(bareRows)
		importUS := float64(importCPU.Microseconds()) / float64(importRows)
		b.Logf("run %d: best bare %.0f/s at %d, best import %.0f/s at %d: of_bare %.3f; cpu per row: bare %.1fus, import %.1fus (%.3f)",
			i, bestBare, bestBareAt, bestImport, bestImportAt, bestImport/bestBare, bareUS, importUS, bareUS/importUS)
		b.ReportMetric(bestBare, "bare_best_rows/s")
		b.ReportMetric(bestImport, "import_best_rows/s")
		b.ReportMetric(bareUS, "bare_cpu_us/row")
		b.ReportMetric(importUS, "import_cpu_us/row")
		ofBare += bestImport / bestBare
		cpuOfBare += bareUS / importUS
	}
	b.ReportMetric(ofBare/float64(b.N), "of_bare")
	b.ReportMetric(cpuOfBare/float64(b.N), "cpu_of_bare")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bareCreateRate is the create rate a plain net/http client reaches on srv:
// one token fetched once, concurrency goroutines each encoding a JSON body,
// posting it, reading and decoding the answer. It stops after n requests or
// maxTime, whichever comes first, and returns 201s per second and their
// number.
func bareCreateRate(tb testing.TB, srv *sandbox.Server, concurrency, n int, maxTime time.Duration, prefix string) (float64, int64) {
	tb.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = concurrency
	tr.MaxIdleConnsPerHost = concurrency
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	token := bareToken(tb, hc, srv)

	type createBody struct {
		CustomerID string `json:"customerId"`
		Email      string `json:"email"`
		Type       string `json:"type"`
	}
	var (
		next, created atomic.Int64
		firstErr      error
		errOnce       sync.Once
		wg            sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(maxTime)
	// The workers inherit the label: go tool pprof -tagfocus side=bare.
	pprof.Do(context.Background(), pprof.Labels("side", "bare"), func(context.Context) {
		for range concurrency {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(n) || time.Now().After(deadline) {
						return
					}
					body, _ := json.Marshal(createBody{
						CustomerID: fmt.Sprintf("%s%d", prefix, i),
						Email:      fmt.Sprintf("%s%d@example.com", prefix, i),
						Type:       "INDIVIDUAL",
					})
					req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/api/v1/customers/", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Accept", "application/json")
					req.Header.Set("Authorization", "Bearer "+token)
					resp, err := hc.Do(req)
					if err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
					var ans map[string]any
					err = json.NewDecoder(resp.Body).Decode(&ans)
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated || err != nil {
						errOnce.Do(func() { firstErr = fmt.Errorf("create: HTTP %d, decode: %v", resp.StatusCode, err) })
						return
					}
					created.Add(1)
				}
			})
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		tb.Fatalf("bare client: %v", firstErr)
	}
	return float64(created.Load()) / elapsed.Seconds(), created.Load()
}

// bareToken fetches a token as the OAuth2 client-credentials grant says,
// without the ripio package.
func bareToken(tb testing.TB, hc *http.Client, srv *sandbox.Server) string {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/oauth2/token/",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.SetBasicAuth(srv.ClientID(), srv.ClientSecret())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("bare token: %v", err)
	}
	defer resp.Body.Close()
	var ans struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != http.StatusOK || ans.AccessToken == "" {
		tb.Fatalf("bare token: HTTP %d, decode: %v", resp.StatusCode, err)
	}
	return ans.AccessToken
}
