package ratelimit_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// BenchmarkAdaptive drives the real client and limiter against the fake
// server, shaped as each case of issue 18 says, with a pool of 16 places
// doing what the importer's send does, and reports the share of the
// server's limit achieved and the share of requests throttled. Run it
// once per measurement:
//
//	go test -run '^$' -bench BenchmarkAdaptive -benchtime 1x -count 3 ./internal/ratelimit/
func BenchmarkAdaptive(b *testing.B) {
	moving := []sandbox.RateStep{{After: 10 * time.Second, Limit: 50}, {After: 20 * time.Second, Limit: 100}}
	cases := []struct {
		name    string
		opts    sandbox.Options
		ceiling float64
		rows    int
		busy    bool // other processes keep every core busy
	}{
		{name: "Bucket100Burst1", opts: sandbox.Options{RateLimit: 100, RateBurst: 1, RetryAfter: true}, ceiling: 400, rows: 3000},
		{name: "Bucket50Burst1Ceiling1000", opts: sandbox.Options{RateLimit: 50, RateBurst: 1, RetryAfter: true}, ceiling: 1000, rows: 1500},
		{name: "FixedWindow100NoRetryAfter", opts: sandbox.Options{RateLimit: 100, RateWindow: time.Second}, ceiling: 400, rows: 3000},
		{name: "Bucket100Burst1BusyCPU", opts: sandbox.Options{RateLimit: 100, RateBurst: 1, RetryAfter: true}, ceiling: 400, rows: 3000, busy: true},
		{name: "Moving100To50To100", opts: sandbox.Options{RateLimit: 100, RateBurst: 1, RetryAfter: true, RateSchedule: moving}, ceiling: 400, rows: 3000},
		{name: "NoLimitLatency20To80ms", opts: sandbox.Options{Latency: 20 * time.Millisecond, LatencyJitter: 60 * time.Millisecond}, ceiling: 200, rows: 3000},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var share, throttled float64
			for b.Loop() {
				if c.busy {
					stop := spinCores(b, 2*time.Minute)
					share, throttled = runPool(b, c.opts, c.ceiling, c.rows)
					stop()
				} else {
					share, throttled = runPool(b, c.opts, c.ceiling, c.rows)
				}
			}
			b.ReportMetric(share, "of_limit")
			b.ReportMetric(100*throttled, "throttled_%")
		})
	}
}

// runPool imports rows into a server started with opts and returns what
// the server created per second as a share of its limit (integrated over
// the run for a moving limit; the ceiling when it has none), and the share
// of create requests it throttled.
func runPool(b *testing.B, opts sandbox.Options, ceiling float64, rows int) (share, throttled float64) {
	b.Helper()
	srv, client := serve(b, opts)
	lim := ratelimit.New(ratelimit.Config{Rate: ceiling})
	run := fmt.Sprint(time.Now().UnixNano())
	jobs := make(chan int, rows)
	for i := range rows {
		jobs <- i
	}
	close(jobs)
	ctx := context.Background()
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	places := make(chan struct{}, 16)
	for range 256 {
		wg.Go(func() {
			for i := range jobs {
				req := ripio.CreateCustomerRequest{
					CustomerID: fmt.Sprintf("%s-%d", run, i),
					Email:      fmt.Sprintf("c%d-%s@example.com", i, run),
					Type:       ripio.Individual,
				}
				if !send(ctx, lim, client, req, places) {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		b.Errorf("%d rows not created", n)
	}
	st := srv.Stats()
	return float64(st.Created) / allowed(opts, ceiling, elapsed), float64(st.Throttled) / float64(st.Requests)
}

// serve starts a sandbox shaped by opts, closed when b ends, and a client
// of it.
func serve(b *testing.B, opts sandbox.Options) (*sandbox.Server, *ripio.Client) {
	b.Helper()
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	client, err := ripio.New(ripio.Config{BaseURL: srv.URL(), ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret()})
	if err != nil {
		b.Fatal(err)
	}
	return srv, client
}

// send is the importer's send, without the ledger: take a place in the
// pool, Reserve, create not before the slot, classify, tell the limiter, and sleep a 429's
// Retry-After out of the pool's places. It gives up on a row after 100
// throttles or 5 other failures.
func send(ctx context.Context, lim *ratelimit.Limiter, client *ripio.Client, req ripio.CreateCustomerRequest, places chan struct{}) bool {
	places <- struct{}{}
	defer func() { <-places }()
	for throttles, fails := 0, 0; throttles < 100 && fails < 5; {
		leave, err := lim.Reserve(ctx)
		if err != nil {
			return false
		}
		req.Leave = leave
		_, err = client.CreateCustomer(ctx, req)
		v := ripio.Classify(err)
		switch v.Outcome {
		case ripio.Created, ripio.Exists:
			lim.Accepted()
			return true
		case ripio.Throttled:
			lim.Throttled(v.RetryAfter)
			throttles++
			// As the importer does: the refused row waits its
			// Retry-After out of the pool; the pool keeps the
			// limiter's pace.
			<-places
			time.Sleep(v.RetryAfter)
			places <- struct{}{}
		case ripio.TokenThrottled:
			lim.Pause(v.RetryAfter)
			throttles++
		default:
			fails++
		}
	}
	return false
}

// allowed is how many creates the server's limit allowed in elapsed: its
// rate (the ceiling when it has none) integrated over its schedule.
func allowed(opts sandbox.Options, ceiling float64, elapsed time.Duration) float64 {
	if opts.RateLimit == 0 {
		return ceiling * elapsed.Seconds()
	}
	total, at, rate := 0.0, time.Duration(0), opts.RateLimit
	for _, st := range opts.RateSchedule {
		if st.After >= elapsed {
			break
		}
		total += rate * (st.After - at).Seconds()
		at, rate = st.After, st.Limit
	}
	return total + rate*(elapsed-at).Seconds()
}

// spinCores starts two child processes (this test binary, re-run as
// TestSpin) that keep a core busy each until stop is called or for at
// most d.
func spinCores(b *testing.B, d time.Duration) (stop func()) {
	b.Helper()
	var cmds []*exec.Cmd
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSpin$")
		cmd.Env = append(os.Environ(), "RATELIMIT_SPIN_FOR="+d.String())
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	return func() {
		for _, cmd := range cmds {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
}

// TestSpin keeps a core busy for RATELIMIT_SPIN_FOR when spinCores runs it
// as a child process; otherwise it does nothing.
func TestSpin(t *testing.T) {
	t.Parallel()
	d, err := time.ParseDuration(os.Getenv("RATELIMIT_SPIN_FOR"))
	if err != nil {
		t.Skip("only a child of BenchmarkAdaptive spins")
	}
	deadline := time.Now().Add(d)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
}

// BenchmarkStrictBucketCollisions paces the pool at fixed rates, the law
// held (a limit known and the ceiling at the rate: lateness is lost, as
// after a 429), against a 100/s bucket of burst 1, and reports the share
// of requests it refused: the client's jitter, which the law meets as
// 429s at rates under the limit. Refused requests are not sent again.
//
//	go test -run '^$' -bench BenchmarkStrictBucketCollisions -benchtime 1x ./internal/ratelimit/
func BenchmarkStrictBucketCollisions(b *testing.B) {
	for _, rate := range []float64{90, 93, 95, 97, 98, 99} {
		b.Run(fmt.Sprint("Rate", rate), func(b *testing.B) {
			var refused float64
			for b.Loop() {
				refused = runFixed(b, rate, 15*time.Second)
			}
			b.ReportMetric(100*refused, "throttled_%")
		})
	}
}

// runFixed sends d's worth of requests at rate through a pool of 16
// places and returns the share the server throttled.
func runFixed(b *testing.B, rate float64, d time.Duration) float64 {
	b.Helper()
	srv, client := serve(b, sandbox.Options{RateLimit: 100, RateBurst: 1, RetryAfter: true})
	lim := ratelimit.New(ratelimit.Config{Rate: rate})
	lim.Adopt(ratelimit.State{Rate: rate, Limit: rate, Margin: 1, Since: time.Now()})
	n := int(rate * d.Seconds())
	jobs := make(chan int, n)
	for i := range n {
		jobs <- i
	}
	close(jobs)
	run := fmt.Sprint(time.Now().UnixNano())
	places := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range jobs {
				places <- struct{}{}
				if leave, err := lim.Reserve(context.Background()); err == nil {
					_, _ = client.CreateCustomer(context.Background(), ripio.CreateCustomerRequest{
						CustomerID: fmt.Sprintf("%s-%d", run, i), Email: fmt.Sprintf("f%d-%s@example.com", i, run), Type: ripio.Individual,
						Leave: leave})
				}
				<-places
			}
		})
	}
	wg.Wait()
	st := srv.Stats()
	return float64(st.Throttled) / float64(st.Requests)
}
