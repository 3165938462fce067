package importer_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/memstore"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// throttleOnce answers each email's first create 429 with a Retry-After,
// and creates it the second time, noting when each request came.
type throttleOnce struct {
	retryAfter time.Duration
	mu         sync.Mutex
	calls      map[string][]time.Time
}

func (s *throttleOnce) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[req.Email] = append(s.calls[req.Email], time.Now())
	if len(s.calls[req.Email]) == 1 {
		return ripio.Customer{}, &ripio.APIError{Status: http.StatusTooManyRequests, RetryAfter: s.retryAfter}
	}
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: true}, nil
}

// freePacer lets every request go at once.
type freePacer struct{}

func (freePacer) Reserve(ctx context.Context) (func(context.Context) error, error) {
	return nil, ctx.Err()
}
func (freePacer) Accepted()               {}
func (freePacer) Throttled(time.Duration) {}
func (freePacer) Pause(time.Duration)     {}

// TestImport_ARowWaitsTheRetryAfterOfItsOwn429: the pacer decides how fast
// the pool goes, but the request the server refused with a Retry-After is
// not sent again before that wait is over.
func TestImport_ARowWaitsTheRetryAfterOfItsOwn429(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		sender := &throttleOnce{retryAfter: 3 * time.Second, calls: map[string][]time.Time{}}
		data, emails := genCSV(20, "ra")
		im := importer.New(importer.Config{SourceFile: "ra.csv", Backoff: time.Millisecond}, sender, freePacer{}, memoryStore{memstore.New()}, "t")
		sum, err := im.Import(t.Context(), strings.NewReader(data))
		if err != nil || sum.Created != int64(len(emails)) {
			t.Fatalf("Import = created %d, %v; want %d, nil", sum.Created, err, len(emails))
		}
		for _, e := range emails {
			c := sender.calls[e]
			if len(c) != 2 {
				t.Fatalf("%s: %d requests, want 2", e, len(c))
			}
			if gap := c[1].Sub(c[0]); gap < sender.retryAfter {
				t.Errorf("%s: sent again %v after its 429, want at least its Retry-After %v", e, gap, sender.retryAfter)
			}
		}
	})
}

// throttleFirst answers its first n creates 429 with a Retry-After and
// creates every later one, noting when.
type throttleFirst struct {
	n          int
	retryAfter time.Duration
	mu         sync.Mutex
	calls      int
	created    []time.Time
}

func (s *throttleFirst) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls++; s.calls <= s.n {
		return ripio.Customer{}, &ripio.APIError{Status: http.StatusTooManyRequests, RetryAfter: s.retryAfter}
	}
	s.created = append(s.created, time.Now())
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: true}, nil
}

// TestImport_RowsWaitingARetryAfterLeaveThePoolSending: a row refused with
// a Retry-After waits it out of the pool's count of requests: as many 429s
// as the pool has places, which a limit that drops brings at once, do not
// stop every other row for the whole wait.
func TestImport_RowsWaitingARetryAfterLeaveThePoolSending(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const concurrency = 4
		sender := &throttleFirst{n: concurrency, retryAfter: 10 * time.Second}
		data, emails := genCSV(40, "pool")
		start := time.Now()
		im := importer.New(importer.Config{SourceFile: "pool.csv", Concurrency: concurrency}, sender, freePacer{}, memoryStore{memstore.New()}, "t")
		sum, err := im.Import(t.Context(), strings.NewReader(data))
		if err != nil || sum.Created != int64(len(emails)) {
			t.Fatalf("Import = created %d, %v; want %d, nil", sum.Created, err, len(emails))
		}
		early := 0
		for _, at := range sender.created {
			if at.Sub(start) < sender.retryAfter {
				early++
			}
		}
		if want := len(emails) - concurrency; early != want {
			t.Errorf("%d rows created while %d refused rows waited their Retry-After, want the %d others", early, concurrency, want)
		}
	})
}

// pendingSender is throttleFirst noting, at each request, the most rows
// its importer held marked in flight and not ended.
type pendingSender struct {
	throttleFirst
	im   *importer.Importer
	most int64
}

func (s *pendingSender) CreateCustomer(ctx context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	p := s.im.Progress().Pending
	s.mu.Lock()
	s.most = max(s.most, p)
	s.mu.Unlock()
	return s.throttleFirst.CreateCustomer(ctx, req)
}

// TestImport_AsManyRowsWaitOutOfThePoolAsItHasPlaces: rows waiting out a
// Retry-After out of the pool stay marked in flight, in doubt if the
// process dies: at most as many of them as the pool has places, so that a
// storm of 429s leaves at most twice the pool and the marks ahead in
// flight.
func TestImport_AsManyRowsWaitOutOfThePoolAsItHasPlaces(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const concurrency, markAhead = 2, 2
		sender := &pendingSender{throttleFirst: throttleFirst{n: 12, retryAfter: 10 * time.Second}}
		data, emails := genCSV(40, "storm")
		im := importer.New(importer.Config{SourceFile: "storm.csv", Concurrency: concurrency, MarkAhead: markAhead},
			sender, freePacer{}, memoryStore{memstore.New()}, "t")
		sender.im = im
		sum, err := im.Import(t.Context(), strings.NewReader(data))
		if err != nil || sum.Created != int64(len(emails)) {
			t.Fatalf("Import = created %d, %v; want %d, nil", sum.Created, err, len(emails))
		}
		if want := int64(2*concurrency + 2*markAhead); sender.most > want {
			t.Errorf("at a request, %d rows were in flight; want at most %d (twice the pool, two batches of marks)", sender.most, want)
		}
	})
}

// alwaysThrottled answers every create 429 without a Retry-After.
type alwaysThrottled struct{}

func (alwaysThrottled) CreateCustomer(context.Context, ripio.CreateCustomerRequest) (ripio.Customer, error) {
	return ripio.Customer{}, &ripio.APIError{Status: http.StatusTooManyRequests}
}

// TestImport_ThrottledForeverEndsAtMaxRetryAfter: a server that answers
// every create 429, without a Retry-After, ends the run once it has done
// so for --max-retry-after, not at the first 429 after the limiter's
// doubling pause has passed it.
func TestImport_ThrottledForeverEndsAtMaxRetryAfter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const maxWait = 20 * time.Second
		data, _ := genCSV(20, "forever")
		lim := ratelimit.New(ratelimit.Config{Rate: 100})
		im := importer.New(importer.Config{SourceFile: "forever.csv", Concurrency: 4, Stop: importer.StopConfig{MaxRetryAfter: maxWait}},
			alwaysThrottled{}, lim, memoryStore{memstore.New()}, "t")
		start := time.Now()
		_, err := im.Import(t.Context(), strings.NewReader(data))
		if !errors.Is(err, importer.ErrThrottledTooLong) {
			t.Fatalf("Import against a server throttling every create = %v, want ErrThrottledTooLong", err)
		}
		if took := time.Since(start); took > maxWait+time.Second {
			t.Errorf("the run ended %v after its first 429, want about --max-retry-after (%v)", took, maxWait)
		}
	})
}

// lastWaitPacer lets every request go, each through a last wait of its
// own, 20ms, that it counts (and any second call of) and notes the end of,
// as a pacer that leaves the end of its wait to the moment the request
// goes.
type lastWaitPacer struct {
	freePacer
	mu      sync.Mutex
	left    []time.Time
	reused  int
	reserve int
}

func (p *lastWaitPacer) Reserve(ctx context.Context) (func(context.Context) error, error) {
	p.mu.Lock()
	p.reserve++
	p.mu.Unlock()
	var used bool
	return func(context.Context) error {
		time.Sleep(20 * time.Millisecond)
		p.mu.Lock()
		defer p.mu.Unlock()
		if used {
			p.reused++
		}
		used = true
		p.left = append(p.left, time.Now())
		return nil
	}, ctx.Err()
}

// stampSender answers each email's first create 429 and creates it the
// second time, and notes when each request went: after its Leave, as the
// ripio client sends it.
type stampSender struct {
	mu   sync.Mutex
	seen map[string]bool
	went []time.Time
}

func (s *stampSender) CreateCustomer(ctx context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	if req.Leave == nil {
		return ripio.Customer{}, errors.New("a request without the pacer's last wait")
	}
	if err := req.Leave(ctx); err != nil {
		return ripio.Customer{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.went = append(s.went, time.Now())
	if !s.seen[req.Email] {
		s.seen[req.Email] = true
		return ripio.Customer{}, &ripio.APIError{Status: http.StatusTooManyRequests, RetryAfter: time.Second}
	}
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: true}, nil
}

// TestImport_EachRequestGoesThroughAPacersLastWaitOfItsOwn: every request,
// a throttled row's second one too, goes through the last wait of a slot
// reserved for it, once.
func TestImport_EachRequestGoesThroughAPacersLastWaitOfItsOwn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		pacer, sender := &lastWaitPacer{}, &stampSender{seen: map[string]bool{}}
		data, emails := genCSV(10, "lw")
		im := importer.New(importer.Config{SourceFile: "lw.csv"}, sender, pacer, memoryStore{memstore.New()}, "t")
		sum, err := im.Import(t.Context(), strings.NewReader(data))
		if err != nil || sum.Created != int64(len(emails)) {
			t.Fatalf("Import = created %d, %v; want %d, nil", sum.Created, err, len(emails))
		}
		want := 2 * len(emails) // a 429, then created
		if pacer.reserve != want || len(pacer.left) != want || len(sender.went) != want || pacer.reused != 0 {
			t.Errorf("%d slots reserved, %d last waits (%d a second time), %d requests; want %d, %d, 0, %d",
				pacer.reserve, len(pacer.left), pacer.reused, len(sender.went), want, want, want)
		}
	})
}
