package ripio_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

func TestToken_AnswerSpellings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string // the create's Authorization; "" when the token answer must fail
	}{
		{"CamelCase", `{"accessToken": "a-camel", "expiresIn": 36000, "tokenType": "Bearer", "scope": "read write"}`, "Bearer a-camel"},
		{"SnakeCase", `{"access_token": "a-snake", "expires_in": 36000, "token_type": "bearer", "scope": "read write"}`, "Bearer a-snake"},
		{"ExpiresInString", `{"accessToken": "a-str", "expiresIn": "36000", "tokenType": "Bearer"}`, "Bearer a-str"},
		{"OnlyToken", `{"accessToken": "a-min"}`, "Bearer a-min"},
		{"MissingToken", `{"expiresIn": 36000, "tokenType": "Bearer"}`, ""},
		{"EmptyToken", `{"accessToken": "", "expiresIn": 36000}`, ""},
		{"NullToken", `{"access_token": null, "expires_in": 36000}`, ""},
		{"NumberToken", `{"accessToken": 12345}`, ""},
		{"NotBearer", `{"accessToken": "a-mac", "tokenType": "MAC"}`, ""},
		{"NotJSON", `<html>OK</html>`, ""},
		{"Array", `[]`, ""},
		{"Empty", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var auth atomic.Value
			f := newFakeAPI(t, answer(200, jsonHeader, tt.body), func(w http.ResponseWriter, r *http.Request) {
				auth.Store(r.Header.Get("Authorization"))
				echoCreated(w, r)
			})
			_, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
			if tt.want == "" {
				var tokErr *ripio.TokenError
				if !errors.As(err, &tokErr) {
					t.Fatalf("CreateCustomer after token answer %s = %v, want a *ripio.TokenError", tt.body, err)
				}
				if n := f.writes.Load(); n != 0 {
					t.Errorf("CreateCustomer after token answer %s sent %d creates, want 0", tt.body, n)
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateCustomer after token answer %s = %v, want no error", tt.body, err)
			}
			if got := auth.Load(); got != tt.want {
				t.Errorf("CreateCustomer after token answer %s sent Authorization %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

// newRipiotest starts a sandbox server and a client of it.
func newRipiotest(t *testing.T, opts sandbox.Options) (*sandbox.Server, *ripio.Client) {
	t.Helper()
	srv, err := sandbox.NewServer(opts)
	if err != nil {
		t.Fatalf("sandbox.NewServer = %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("sandbox Close = %v", err)
		}
	})
	c, err := ripio.New(ripio.Config{
		BaseURL: srv.URL(), ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(),
		HTTPClient: srv.Client(), Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("ripio.New(%s) = %v", srv.URL(), err)
	}
	return srv, c
}

func customer(i int) ripio.CreateCustomerRequest {
	typ := ripio.Individual
	if i%2 == 1 {
		typ = ripio.Business
	}
	return ripio.CreateCustomerRequest{CustomerID: fmt.Sprintf("c-%04d", i), Email: fmt.Sprintf("c%04d@example.com", i), Type: typ}
}

// TestToken_ReusedAcrossCalls: one token serves many calls, in either
// spelling of the answer.
func TestToken_ReusedAcrossCalls(t *testing.T) {
	t.Parallel()
	for _, snake := range []bool{false, true} {
		t.Run("Snake"+strconv.FormatBool(snake), func(t *testing.T) {
			t.Parallel()
			srv, c := newRipiotest(t, sandbox.Options{TokenSnakeCase: snake})
			const calls = 20
			for i := range calls {
				if _, err := c.CreateCustomer(t.Context(), customer(i)); err != nil {
					t.Fatalf("CreateCustomer(%+v) = %v", customer(i), err)
				}
			}
			if st := srv.Stats(); st.TokenRequests != 1 || st.Created != calls {
				t.Errorf("after %d creates: %d token requests, %d created, want 1, %d", calls, st.TokenRequests, st.Created, calls)
			}
		})
	}
}

// barrier opens when n parties have arrived, or after a bound so that a
// broken client fails the test instead of hanging it.
type barrier struct {
	n, arrived atomic.Int64
	open       chan struct{}
}

func newBarrier(n int) *barrier {
	b := &barrier{open: make(chan struct{})}
	b.n.Store(int64(n))
	return b
}

func (b *barrier) arrive() {
	if b.arrived.Add(1) == b.n.Load() {
		close(b.open)
	}
}

func (b *barrier) wait() {
	select {
	case <-b.open:
	case <-time.After(5 * time.Second):
	}
}

// runWorkers runs n creates at once and returns their errors.
func runWorkers(ctx context.Context, c *ripio.Client, n int, before func()) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if before != nil {
				before()
			}
			_, errs[i] = c.CreateCustomer(ctx, customer(i))
		})
	}
	wg.Wait()
	return errs
}

// TestToken_ConcurrentFirstUseFetchesOnce: workers that all need the first
// token while it is being fetched wait for that one fetch. The token answer
// is held until every worker has started, so that they pile up; any that
// comes later finds the token cached, so the count does not depend on timing.
func TestToken_ConcurrentFirstUseFetchesOnce(t *testing.T) {
	t.Parallel()
	const workers = 50
	started := newBarrier(workers)
	tokenAnswer := answer(200, jsonHeader, `{"accessToken": "tok-1", "expiresIn": 3600, "tokenType": "Bearer"}`)
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		started.wait()
		time.Sleep(50 * time.Millisecond) // let the workers reach the cache
		tokenAnswer(w, r)
	}, echoCreated)

	errs := runWorkers(t.Context(), newClient(t, f.URL), workers, started.arrive)
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: CreateCustomer = %v", i, err)
		}
	}
	if n := f.tokens.Load(); n != 1 {
		t.Errorf("%d workers at once made %d token requests, want 1", workers, n)
	}
}

// TestToken_RefreshedAfter401: a token the server no longer accepts is
// dropped and the call is made once more with a fresh one. The server's
// clock jumps past the token's life; the client's does not.
func TestToken_RefreshedAfter401(t *testing.T) {
	t.Parallel()
	var skew atomic.Int64
	srv, c := newRipiotest(t, sandbox.Options{
		TokenTTL: time.Hour,
		Now:      func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
	})
	if _, err := c.CreateCustomer(t.Context(), customer(1)); err != nil {
		t.Fatalf("CreateCustomer(%+v) = %v", customer(1), err)
	}
	skew.Store(int64(2 * time.Hour))
	if _, err := c.CreateCustomer(t.Context(), customer(2)); err != nil {
		t.Fatalf("CreateCustomer(%+v) with a token the server let expire = %v, want success after one refresh", customer(2), err)
	}
	st := srv.Stats()
	got := []int64{st.TokenRequests, st.Unauthorized, st.Created}
	if want := []int64{2, 1, 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("token requests, 401s, created = %v, want %v", got, want)
	}
}

// TestToken_RefusedAfterRefreshIsUnauthorized: a server that refuses the
// fresh token too gets one refresh, not a loop, and the call is reported as
// a credentials problem.
func TestToken_RefusedAfterRefreshIsUnauthorized(t *testing.T) {
	t.Parallel()
	for _, status := range []int{401, 403} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			var (
				mu    sync.Mutex
				auths []string
			)
			f := newFakeAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				auths = append(auths, r.Header.Get("Authorization"))
				mu.Unlock()
				answer(status, jsonHeader, envelope(status, 40001, "NotAuthenticated", `{"message": "Authentication credentials were not provided."}`))(w, r)
			})
			_, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
			if v := ripio.Classify(err); v.Outcome != ripio.Unauthorized || v.HTTPStatus != status {
				t.Errorf("Classify(CreateCustomer against a server refusing every token) = %+v, want unauthorized %d", v, status)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"Bearer tok-1", "Bearer tok-2"}; !reflect.DeepEqual(auths, want) {
				t.Errorf("creates sent with %q, want %q", auths, want)
			}
			if n := f.tokens.Load(); n != 2 {
				t.Errorf("token requests = %d, want 2", n)
			}
		})
	}
}

// TestToken_Concurrent401sRefetchOnce: workers refused with the same token
// at once make one new fetch between them, also when the server issues the
// same token text again (many OAuth servers do while it is valid). The
// first round of creates is held until every worker has sent, so that all
// are refused together; later creates succeed.
func TestToken_Concurrent401sRefetchOnce(t *testing.T) {
	t.Parallel()
	const workers = 50
	tests := []struct {
		name  string
		token http.HandlerFunc // nil: tok-1, tok-2, ...
	}{
		{"NewTokenText", nil},
		{"SameTokenText", answer(200, jsonHeader, `{"accessToken": "same", "expiresIn": 3600, "tokenType": "Bearer"}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			refused := newBarrier(workers)
			var f *fakeAPI
			f = newFakeAPI(t, tt.token, func(w http.ResponseWriter, r *http.Request) {
				if f.writes.Load() <= workers {
					refused.arrive()
					refused.wait()
					answer(401, jsonHeader, envelope(401, 40001, "NotAuthenticated", `{"message": "Token revoked."}`))(w, r)
					return
				}
				echoCreated(w, r)
			})

			errs := runWorkers(t.Context(), newClient(t, f.URL), workers, nil)
			for i, err := range errs {
				if err != nil {
					t.Errorf("worker %d: CreateCustomer = %v", i, err)
				}
			}
			if got, want := []int64{f.tokens.Load(), f.writes.Load()}, []int64{2, 2 * workers}; !reflect.DeepEqual(got, want) {
				t.Errorf("%d workers refused at once: token requests, creates = %v, want %v", workers, got, want)
			}
		})
	}
}

// memAPI is a hand-written Ripio served in memory as an http.RoundTripper,
// for tests inside a synctest bubble, where goroutines waiting on loopback
// I/O would keep the fake clock from moving. It issues mem-1, mem-2, ...
// and refuses a create whose token is unknown or expired by the bubble's
// clock.
type memAPI struct {
	expiresIn   string        // the JSON value of expiresIn; "" leaves it out (never expires)
	snake       bool          // answer access_token / expires_in
	tokenDelay  time.Duration // before every token answer
	tokenStatus int           // 0 answers the token; else this error

	mu          sync.Mutex
	expiry      map[string]time.Time
	tokens      int // token requests
	creates     int // create requests
	expiredUses int // creates refused for their token
}

func (m *memAPI) RoundTrip(r *http.Request) (*http.Response, error) {
	defer r.Body.Close()
	data, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(data))
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/oauth2/token/" {
		m.token(rec)
	} else {
		m.create(rec, r)
	}
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

func (m *memAPI) token(w http.ResponseWriter) {
	m.mu.Lock()
	m.tokens++
	tok := fmt.Sprintf("mem-%d", m.tokens)
	m.mu.Unlock()
	time.Sleep(m.tokenDelay)
	if m.tokenStatus != 0 {
		w.WriteHeader(m.tokenStatus)
		io.WriteString(w, envelope(m.tokenStatus, 50300, "ServiceUnavailable", `{"message": "Try later."}`))
		return
	}
	exp := time.Now().Add(100 * 365 * 24 * time.Hour)
	if m.expiresIn != "" {
		secs, err := strconv.ParseFloat(strings.Trim(m.expiresIn, `"`), 64)
		if err != nil {
			panic(err)
		}
		exp = time.Now().Add(time.Duration(secs * float64(time.Second)))
	}
	m.mu.Lock()
	if m.expiry == nil {
		m.expiry = map[string]time.Time{}
	}
	m.expiry[tok] = exp
	m.mu.Unlock()

	tokenKey, expiresKey := "accessToken", "expiresIn"
	if m.snake {
		tokenKey, expiresKey = "access_token", "expires_in"
	}
	body := fmt.Sprintf(`{%q: %q, "tokenType": "Bearer"`, tokenKey, tok)
	if m.expiresIn != "" {
		body += fmt.Sprintf(`, %q: %s`, expiresKey, m.expiresIn)
	}
	io.WriteString(w, body+"}")
}

func (m *memAPI) create(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	exp, ok := m.expiry[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok || !time.Now().Before(exp) {
		m.expiredUses++
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, envelope(401, 40001, "NotAuthenticated", `{"message": "Token expired."}`))
		return
	}
	echoCreated(w, r)
}

func (m *memAPI) counts() (tokens, creates, expiredUses int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokens, m.creates, m.expiredUses
}

// newMemClient returns a client whose requests m answers in memory.
func newMemClient(t *testing.T, m *memAPI) *ripio.Client {
	t.Helper()
	return newClient(t, "http://127.0.0.1:9", func(c *ripio.Config) {
		c.HTTPClient = &http.Client{Transport: m}
	})
}

// TestToken_RefreshedBeforeExpiry: a token is used until shortly before it
// expires and replaced then, so that no call leaves with a dying token and
// a short-lived token is not fetched on every call. Under synctest, the
// sleeps take no real time.
func TestToken_RefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		expiresIn string // JSON
		snake     bool
		quiet     time.Duration // calls up to here use the first token
		due       time.Duration // a call here has fetched a second; 0: never
	}{
		{"2s", "2", false, 1700 * time.Millisecond, 1900 * time.Millisecond},
		{"2sSnakeCase", "2", true, 1700 * time.Millisecond, 1900 * time.Millisecond},
		{"60s", "60", false, 53 * time.Second, 55 * time.Second},
		{"36000sAsString", `"36000"`, false, 35939 * time.Second, 35941 * time.Second},
		{"NoExpiresIn", "", false, 1000 * time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				m := &memAPI{expiresIn: tt.expiresIn, snake: tt.snake}
				c := newMemClient(t, m)
				start := time.Now()
				call := func(at time.Duration, wantTokens int) {
					t.Helper()
					time.Sleep(at - time.Since(start))
					for i := range 3 {
						if _, err := c.CreateCustomer(t.Context(), customer(i)); err != nil {
							t.Fatalf("at %v: CreateCustomer = %v", at, err)
						}
					}
					if tokens, _, _ := m.counts(); tokens != wantTokens {
						t.Errorf("at %v after a token of %s s: %d token requests, want %d", at, tt.expiresIn, tokens, wantTokens)
					}
				}
				call(0, 1)
				call(tt.quiet/2, 1)
				call(tt.quiet, 1)
				if tt.due > 0 {
					call(tt.due, 2)
				}
				if _, _, expired := m.counts(); expired != 0 {
					t.Errorf("%d creates carried an expired token, want 0", expired)
				}
			})
		})
	}
}

// TestToken_FailedFetchIsShared: workers waiting for a fetch that fails get
// its error; they do not each ask the failing endpoint again in turn.
func TestToken_FailedFetchIsShared(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const workers = 50
		m := &memAPI{tokenDelay: time.Second, tokenStatus: http.StatusServiceUnavailable}
		c := newMemClient(t, m)
		for i, err := range runWorkers(t.Context(), c, workers, nil) {
			if v := ripio.Classify(err); v.Outcome != ripio.NotSent || v.HTTPStatus != 503 {
				t.Errorf("worker %d: Classify(%v) = %+v, want not_sent 503", i, err, v)
			}
		}
		tokens, creates, _ := m.counts()
		if tokens != 1 || creates != 0 {
			t.Errorf("%d workers during a failing fetch: %d token requests, %d creates, want 1, 0", workers, tokens, creates)
		}

		// The failure is not cached: the next call asks again.
		c.CreateCustomer(t.Context(), ana)
		if tokens, _, _ := m.counts(); tokens != 2 {
			t.Errorf("a call after a failed fetch: %d token requests in all, want 2", tokens)
		}
	})
}

// TestToken_WaitEndsWithContext: a worker waiting for another's token fetch
// leaves when its context ends, as not sent.
func TestToken_WaitEndsWithContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := &memAPI{tokenDelay: 10 * time.Second, expiresIn: "3600"}
		c := newMemClient(t, m)
		first := make(chan error, 1)
		go func() {
			_, err := c.CreateCustomer(context.Background(), customer(1))
			first <- err
		}()
		synctest.Wait() // the first call is fetching

		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := c.CreateCustomer(ctx, customer(2))
		if v := ripio.Classify(err); v.Outcome != ripio.NotSent || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Classify(CreateCustomer waiting for a token past its deadline) = %+v (%v), want not_sent from context.DeadlineExceeded", v, err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("CreateCustomer waited %v for a token, want 1s, its deadline", waited)
		}
		if err := <-first; err != nil {
			t.Errorf("the fetching call: CreateCustomer = %v", err)
		}
		if tokens, creates, _ := m.counts(); tokens != 1 || creates != 1 {
			t.Errorf("token requests, creates = %d, %d, want 1, 1", tokens, creates)
		}
	})
}
