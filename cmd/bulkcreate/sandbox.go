package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

const sandboxUsage = `Usage: bulkcreate sandbox [flags]

Serves a fake Ripio API (token and Create Customer, as the published spec
says) until interrupted, and prints the environment to point import at it.
Its knobs inject the failures a real API has, for trials and rehearsals.

Examples:
  bulkcreate sandbox --addr 127.0.0.1:8080
  bulkcreate sandbox --rate-limit 100 --latency 20ms --jitter 60ms --fail-after 0.02
  bulkcreate sandbox --assign-ids        # a server that numbers customers itself
  bulkcreate sandbox --fail-before 1     # 503 to every create
  bulkcreate sandbox --rate-limit 100 --rate-burst 1 --rate-schedule 10s:50,20s:100

Flags:
`

func runSandbox(ctx context.Context, e env, args []string) error {
	opts := sandbox.DefaultOptions()
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "listen `address` (loopback)")
	fs.StringVar(&opts.DBPath, "db", "", "keep customers in this SQLite `file` (default: in memory)")
	fs.DurationVar(&opts.TokenTTL, "token-ttl", time.Hour, "lifetime of issued tokens")
	fs.BoolVar(&opts.TokenSnakeCase, "snake-case-token", false, "answer the token in snake_case, as Ripio's older API does")
	fs.Float64Var(&opts.RateLimit, "rate-limit", 0, "creates accepted per second, 429 beyond (0: no limit)")
	fs.IntVar(&opts.RateBurst, "rate-burst", 0, "burst of the rate limit (default a tenth of it)")
	noRetryAfter := fs.Bool("no-retry-after", false, "answer 429 without a Retry-After header")
	fs.DurationVar(&opts.Latency, "latency", 0, "added to every create")
	fs.DurationVar(&opts.LatencyJitter, "jitter", 0, "random extra latency, up to this")
	fs.Float64Var(&opts.FailBeforeCommit, "fail-before", 0, "share of creates answering 503 without storing")
	fs.Float64Var(&opts.FailAfterCommit, "fail-after", 0, "share of creates stored, then answered 500")
	fs.Float64Var(&opts.DropAfterCommit, "drop-after", 0, "share of creates stored, then the connection dropped")
	fs.Float64Var(&opts.HangAfterCommit, "hang-after", 0, "share of creates stored, then never answered")
	fs.BoolVar(&opts.UniqueEmail, "unique-email", false, "also refuse a second customer with the same email")
	fs.Int64Var(&opts.Seed, "seed", 0, "seed of the fault and jitter draws (0: random)")
	addMisbehaviourFlags(fs, &opts)
	fs.DurationVar(&opts.RateWindow, "rate-window", 0, "count --rate-limit in fixed windows of this length, such as 1s (default: a token bucket)")
	fs.Var((*rateSchedule)(&opts.RateSchedule), "rate-schedule", "change --rate-limit during the run: `after:limit,...` from the first create, such as 10s:50,20s:100")
	posArgs, helped, err := parseArgs(e, fs, sandboxUsage, args)
	if helped || err != nil {
		return err
	}
	if len(posArgs) != 0 {
		return usageError("sandbox: unexpected argument %q; try: bulkcreate sandbox --addr 127.0.0.1:8080", posArgs[0])
	}
	if err := checkLoopback(opts.Addr); err != nil {
		return err
	}
	opts.RetryAfter = !*noRetryAfter
	if opts.RateBurst == 0 {
		opts.RateBurst = max(1, int(opts.RateLimit/10))
	}
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		return usageError("sandbox: %v", err)
	}
	fmt.Fprintf(e.stdout, "fake Ripio API at %s (Ctrl-C stops it)\n\n", srv.URL())
	fmt.Fprintf(e.stdout, "export RIPIO_BASE_URL=%s\nexport RIPIO_CLIENT_ID=%s\nexport RIPIO_CLIENT_SECRET=%s\n",
		srv.URL(), srv.ClientID(), srv.ClientSecret())
	<-ctx.Done()
	st := srv.Stats()
	err = srv.Close()
	fmt.Fprintf(e.stdout, "\nserved %d creates: %d created, %d duplicates refused, %d throttled, %d rejected\n",
		st.Requests, st.Created, st.Duplicates, st.Throttled, st.Rejected)
	return err
}

// rateSchedule is the --rate-schedule flag: after:limit steps.
type rateSchedule []sandbox.RateStep

func (r *rateSchedule) String() string {
	var parts []string
	for _, st := range *r {
		parts = append(parts, fmt.Sprintf("%v:%v", st.After, st.Limit))
	}
	return strings.Join(parts, ",")
}

func (r *rateSchedule) Set(v string) error {
	*r = nil
	for part := range strings.SplitSeq(v, ",") {
		after, limit, ok := strings.Cut(strings.TrimSpace(part), ":")
		d, err := time.ParseDuration(after)
		if !ok || err != nil {
			return fmt.Errorf("step %q: want after:limit, such as 10s:50", part)
		}
		l, err := strconv.ParseFloat(limit, 64)
		if err != nil {
			return fmt.Errorf("step %q: limit %q is not a number", part, limit)
		}
		*r = append(*r, sandbox.RateStep{After: d, Limit: l})
	}
	return nil
}
