package fleetrate_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/fleetrate"
	"github.com/bulkcreate/bulkcreate/internal/ledger/postgres"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// BenchmarkFleetBudget runs 4 processes (this test binary, re-run as
// TestFleetWorker) sharing one 200/s budget in a PostgreSQL ledger, each
// with a 16-worker pool doing what the importer's send does, against an
// in-process sandbox with no limit and against one limited at 200/s,
// burst 1 and burst 20, and under a 400/s budget against the latter; and
// one process alone against the burst-1 bucket. It reports what the server
// created per second, from the first request any worker sent to the last,
// as a share of the budget or of the server's limit when that is lower,
// and the share of create requests throttled. Run it once per measurement, with
// BULKCREATE_TEST_POSTGRES_URL set:
//
//	go test -run '^$' -bench BenchmarkFleetBudget -benchtime 1x -count 3 ./internal/fleetrate/
func BenchmarkFleetBudget(b *testing.B) {
	const budget, rows = 200, 3000
	bucket := sandbox.Options{RateLimit: budget, RateBurst: 1, RetryAfter: true}
	lenient := sandbox.Options{RateLimit: budget, RateBurst: 20, RetryAfter: true}
	for _, c := range []struct {
		name      string
		opts      sandbox.Options
		budget    float64
		processes int
	}{
		{"NoServerLimit", sandbox.Options{}, budget, 4},
		{"Bucket200Burst1", bucket, budget, 4},
		// The same law in one process, for comparison: what the fleet
		// loses to sharing, beyond what the law loses to a strict bucket.
		{"Bucket200Burst1OneProcess", bucket, budget, 1},
		// A lenient bucket tolerates the jitter of processes sharing two
		// cores: at the budget, and under a budget twice its limit, which
		// the shared law must find.
		{"Bucket200Burst20", lenient, budget, 4},
		{"Bucket200Burst20Budget400", lenient, 2 * budget, 4},
	} {
		b.Run(c.name, func(b *testing.B) {
			var share, throttled float64
			for b.Loop() {
				share, throttled = runFleet(b, c.opts, c.budget, c.processes, rows)
			}
			b.ReportMetric(share, "of_limit")
			b.ReportMetric(100*throttled, "throttled_%")
		})
	}
}

// runFleet starts a server with opts and processes workers that import
// rows between them under a budget of rps, and returns what the server
// created per second as a share of rps or of its limit when lower, and the
// share of create requests it throttled.
func runFleet(b *testing.B, opts sandbox.Options, rps float64, processes, rows int) (share, throttled float64) {
	b.Helper()
	url := os.Getenv("BULKCREATE_TEST_POSTGRES_URL")
	if url == "" {
		b.Skip("BULKCREATE_TEST_POSTGRES_URL is not set")
	}
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	schema := "bench_" + randomHex()
	defer dropSchema(url, schema)
	l, err := postgres.Open(b.Context(), url, postgres.Options{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := l.SetCeiling(b.Context(), srv.URL(), rps); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var first, last int64
	var wg sync.WaitGroup
	per := rows / processes
	for i := range processes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFleetWorker$")
		cmd.Env = append(os.Environ(), "FLEETRATE_WORKER="+strings.Join([]string{
			url, schema, srv.URL(), srv.ClientID(), srv.ClientSecret(), strconv.Itoa(i * per), strconv.Itoa((i + 1) * per),
		}, " "))
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				var f, l int64
				if _, err := fmt.Sscanf(sc.Text(), "sent %d %d", &f, &l); err == nil {
					mu.Lock()
					first, last = minNonZero(first, f), max(last, l)
					mu.Unlock()
				}
			}
			if err := cmd.Wait(); err != nil {
				b.Errorf("worker %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	st := srv.Stats()
	if st.Created != int64(per*processes) {
		b.Errorf("created %d, want %d", st.Created, per*processes)
	}
	limit := rps
	if opts.RateLimit > 0 {
		limit = min(rps, opts.RateLimit)
	}
	span := time.Duration(last-first) + time.Duration(float64(time.Second)/limit)
	return float64(st.Created) / (limit * span.Seconds()), float64(st.Throttled) / float64(st.Requests)
}

// TestFleetWorker is one process of BenchmarkFleetBudget's fleet when it
// runs this binary with FLEETRATE_WORKER set; otherwise it does nothing.
// It prints when its first and last requests left, in Unix nanoseconds.
func TestFleetWorker(t *testing.T) {
	args := strings.Fields(os.Getenv("FLEETRATE_WORKER"))
	if len(args) != 7 {
		t.Skip("only a child of BenchmarkFleetBudget works")
	}
	from, _ := strconv.Atoi(args[5])
	to, _ := strconv.Atoi(args[6])
	ctx := t.Context()
	l, err := postgres.Open(ctx, args[0], postgres.Options{Schema: args[1]})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	target := args[2]
	start := time.Now()
	bud, err := l.OpenBudget(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fleetrate.New(fleetrate.Config{Budget: l, Target: target}, bud, start, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client, err := ripio.New(ripio.Config{BaseURL: args[2], ClientID: args[3], ClientSecret: args[4]})
	if err != nil {
		t.Fatal(err)
	}
	jobs := make(chan int, to-from)
	for i := from; i < to; i++ {
		jobs <- i
	}
	close(jobs)
	var mu sync.Mutex
	var first, last int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				req := ripio.CreateCustomerRequest{CustomerID: fmt.Sprint("c-", i), Email: fmt.Sprintf("c%d@example.com", i), Type: ripio.Individual}
				if !send(ctx, p, client, req, func(at int64) {
					mu.Lock()
					first, last = minNonZero(first, at), max(last, at)
					mu.Unlock()
				}) {
					t.Errorf("row %d not created", i)
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("sent %d %d\n", first, last)
}

// send is the importer's send, without the ledger (as in package
// ratelimit's BenchmarkAdaptive): Wait, create, classify, tell the pacer.
// It tells sent when each request left, in Unix nanoseconds.
func send(ctx context.Context, p *fleetrate.Pacer, client *ripio.Client, req ripio.CreateCustomerRequest, sent func(int64)) bool {
	for throttles, fails := 0, 0; throttles < 100 && fails < 5; {
		if err := p.Wait(ctx); err != nil {
			return false
		}
		sent(time.Now().UnixNano())
		_, err := client.CreateCustomer(ctx, req)
		v := ripio.Classify(err)
		switch v.Outcome {
		case ripio.Created, ripio.Exists:
			p.Accepted()
			return true
		case ripio.Throttled:
			p.Throttled(v.RetryAfter)
			throttles++
			time.Sleep(v.RetryAfter)
		case ripio.TokenThrottled:
			p.Pause(v.RetryAfter)
			throttles++
		default:
			fails++
		}
	}
	return false
}

func minNonZero(a, b int64) int64 {
	if a == 0 || b != 0 && b < a {
		return b
	}
	return a
}

func randomHex() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func dropSchema(url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
}
