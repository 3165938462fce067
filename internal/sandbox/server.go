package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Stats counts what a Server did. Requests counts create requests; every
// other field but TokenRequests counts one outcome of them.
type Stats struct {
	Requests      int64 // create requests received, any outcome
	TokenRequests int64 // token requests received, any outcome
	Created       int64 // customers stored, including those of after-commit faults
	Throttled     int64 // 429 answers
	Duplicates    int64 // 400 answers for an existing customerId or email
	Rejected      int64 // other 400 answers: JSON parse and validation errors
	Unauthorized  int64 // 401 answers to creates

	FailedBeforeCommit int64 // injected 503 answers, nothing stored
	FailedAfterCommit  int64 // injected 500 answers after storing
	Dropped            int64 // connections closed without an answer after storing
	Hung               int64 // requests left without an answer after storing
}

type counters struct {
	requests, tokenRequests, created, throttled, duplicates, rejected, unauthorized atomic.Int64
	failedBeforeCommit, failedAfterCommit, dropped, hung                            atomic.Int64
}

// Customer is a customer as the fake stored it.
type Customer struct {
	CustomerID string
	Email      string
	Type       string // "INDIVIDUAL" or "BUSINESS"
	IsActive   bool
	CreatedAt  time.Time // UTC
}

// A Server is a running fake of the Ripio Ramp API. It is safe for
// concurrent use.
type Server struct {
	opts      Options
	store     *store
	srv       *http.Server
	url       string
	transport *http.Transport
	client    *http.Client
	handler   http.Handler

	limiter atomic.Pointer[rate.Limiter] // nil: unlimited
	shape   *shape                       // nil: the bucket alone

	rngMu sync.Mutex
	rng   *rand.Rand

	tokensMu  sync.Mutex
	tokens    map[string]time.Time // token -> expiry
	nextSweep int                  // len(tokens) at which expired tokens are dropped

	stats counters

	mu        sync.Mutex // guards closed and inflight.Add
	closed    bool
	inflight  sync.WaitGroup
	done      chan struct{} // closed by Close; waiting handlers select on it
	serveDone chan struct{}
	serveErr  error // set before serveDone is closed
	closeOnce sync.Once
	closeErr  error
}

// NewServer starts a Server listening on opts.Addr and serving at once. The
// caller must Close it.
func NewServer(opts Options) (*Server, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	st, err := openStore(opts.DBPath)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("sandbox: listen %s: %w", opts.Addr, err)
	}

	seed1, seed2 := uint64(opts.Seed), uint64(opts.Seed)^0x9e3779b97f4a7c15
	if opts.Seed == 0 {
		seed1, seed2 = rand.Uint64(), rand.Uint64()
	}
	s := &Server{
		opts:      opts,
		store:     st,
		url:       "http://" + lis.Addr().String(),
		rng:       rand.New(rand.NewPCG(seed1, seed2)),
		tokens:    map[string]time.Time{},
		nextSweep: 1024,
		done:      make(chan struct{}),
		serveDone: make(chan struct{}),
	}
	s.SetRateLimit(opts.RateLimit, opts.RateBurst)
	s.shape = newShape(opts)
	s.handler = http.HandlerFunc(s.serveHTTP)

	errorLog := log.New(io.Discard, "", 0)
	if opts.Logf != nil {
		errorLog = log.New(logfWriter(opts.Logf), "", 0)
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errorLog,
	}
	s.transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256, // benchmarks run many workers against one host
		IdleConnTimeout:     90 * time.Second,
	}
	s.client = &http.Client{Transport: s.transport}

	go func() {
		defer close(s.serveDone)
		if err := s.srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = fmt.Errorf("sandbox: serve: %w", err)
		}
	}()
	return s, nil
}

// URL returns the base URL of the server, such as http://127.0.0.1:PORT,
// without a trailing slash.
func (s *Server) URL() string { return s.url }

// Client returns an HTTP client for the server. Close closes its idle
// connections.
func (s *Server) Client() *http.Client { return s.client }

// ClientID returns the client id the token endpoint accepts.
func (s *Server) ClientID() string { return s.opts.ClientID }

// ClientSecret returns the client secret the token endpoint accepts.
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// Handler returns the server's routes, for serving them from another
// http.Server. They stop with Close like the server's own.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the server: it refuses new requests, closes every connection,
// releases handlers waiting in latency or HangAfterCommit, waits for all
// handlers to return and closes the store. A server with a DBPath no longer
// answers Customers after Close; one in memory still does. Close is
// idempotent and returns the first error.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		s.mu.Unlock()

		errs := []error{s.srv.Close()}
		<-s.serveDone
		errs = append(errs, s.serveErr)
		s.inflight.Wait()
		s.transport.CloseIdleConnections()
		errs = append(errs, s.store.close())
		for _, err := range errs {
			if err != nil {
				s.closeErr = err
				break
			}
		}
	})
	return s.closeErr
}

// Stats returns a snapshot of the counters. Counters are read one by one, so
// a snapshot taken while requests run may be off by the requests in flight.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Requests:           c.requests.Load(),
		TokenRequests:      c.tokenRequests.Load(),
		Created:            c.created.Load(),
		Throttled:          c.throttled.Load(),
		Duplicates:         c.duplicates.Load(),
		Rejected:           c.rejected.Load(),
		Unauthorized:       c.unauthorized.Load(),
		FailedBeforeCommit: c.failedBeforeCommit.Load(),
		FailedAfterCommit:  c.failedAfterCommit.Load(),
		Dropped:            c.dropped.Load(),
		Hung:               c.hung.Load(),
	}
}

// Customers returns every stored customer, sorted by CustomerID. It returns
// nil if the store cannot be read, as after Close with a DBPath.
func (s *Server) Customers() []Customer {
	cs, err := s.store.all()
	if err != nil {
		s.logf("sandbox: %v", err)
		return nil
	}
	return cs
}

// Customer returns the stored customer with the given id.
func (s *Server) Customer(id string) (Customer, bool) {
	c, ok, err := s.store.get(id)
	if err != nil {
		s.logf("sandbox: %v", err)
		return Customer{}, false
	}
	return c, ok
}

// SetRateLimit replaces the create rate limit with a full bucket of burst
// tokens refilled at perSecond. perSecond <= 0 removes the limit; burst <= 0
// means max(1, int(perSecond/10)).
func (s *Server) SetRateLimit(perSecond float64, burst int) {
	if !(perSecond > 0) || math.IsInf(perSecond, 0) {
		s.limiter.Store(nil)
		return
	}
	if burst <= 0 {
		burst = defaultBurst(perSecond)
	}
	s.limiter.Store(rate.NewLimiter(rate.Limit(perSecond), burst))
}

// allow takes a token from the rate limit, or says how long until one is
// there.
func (s *Server) allow() (wait time.Duration, ok bool) {
	if wait, ok, decided := s.shape.allow(s); decided {
		return wait, ok
	}
	lim := s.limiter.Load()
	if lim == nil {
		return 0, true
	}
	now := s.opts.Now()
	if lim.AllowN(now, 1) {
		return 0, true
	}
	// A refused AllowN leaves the bucket as it was, unlike a cancelled
	// reservation, which can lose tokens when many are cancelled at once.
	missing := 1 - lim.TokensAt(now)
	return time.Duration(missing / float64(lim.Limit()) * float64(time.Second)), false
}

// draw returns a uniform number in [0, 1) from the seeded source.
func (s *Server) draw() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

func (s *Server) latency() time.Duration {
	d := s.opts.Latency
	if j := s.opts.LatencyJitter; j > 0 {
		s.rngMu.Lock()
		d += time.Duration(s.rng.Int64N(int64(j)))
		s.rngMu.Unlock()
	}
	return d
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// logfWriter lets the http.Server's error log reach Options.Logf.
type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}
