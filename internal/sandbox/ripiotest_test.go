package sandbox_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// The tests speak plain HTTP with hand-written JSON, so that they check the
// wire format itself rather than agree with some client's structs.

func TestToken_Answers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		opts          sandbox.Options
		wantKeys      []string
		wantExpiresIn float64
	}{
		{"CamelCase", sandbox.Options{}, []string{"accessToken", "expiresIn", "tokenType", "scope"}, 3600},
		{"SnakeCase", sandbox.Options{TokenSnakeCase: true}, []string{"access_token", "expires_in", "token_type", "scope"}, 3600},
		{"ExpiresInRoundsUp", sandbox.Options{TokenTTL: 1500 * time.Millisecond}, []string{"accessToken", "expiresIn", "tokenType", "scope"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, tt.opts)
			a := requestToken(t, s, s.ClientID(), s.ClientSecret(), "grant_type=client_credentials")
			if a.status != http.StatusOK {
				t.Fatalf("token status = %d, want 200; body %s", a.status, a.raw)
			}
			if got := keys(a.body); !slices.Equal(got, sorted(tt.wantKeys)) {
				t.Errorf("token keys = %v, want %v", got, sorted(tt.wantKeys))
			}
			tok, _ := a.body[tt.wantKeys[0]].(string)
			if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(tok) {
				t.Errorf("token = %q, want 64 hex digits", tok)
			}
			if got := a.body[tt.wantKeys[1]]; got != tt.wantExpiresIn {
				t.Errorf("%s = %v, want %v", tt.wantKeys[1], got, tt.wantExpiresIn)
			}
			if got := a.body[tt.wantKeys[2]]; got != "Bearer" {
				t.Errorf("%s = %v, want Bearer", tt.wantKeys[2], got)
			}
			if got := a.body["scope"]; got != "read write" {
				t.Errorf("scope = %v, want %q", got, "read write")
			}
			if got := a.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			// The token works.
			if c := create(t, s, tok, customerJSON("c1", "a@example.com", "INDIVIDUAL")); c.status != http.StatusCreated {
				t.Errorf("create with the new token: status = %d, want 201; body %s", c.status, c.raw)
			}
		})
	}
}

func TestToken_RefusesBadRequests(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{ClientID: "id", ClientSecret: "secret"})
	const badCreds = "Invalid client credentials."
	tests := []struct {
		name        string
		method      string
		path        string
		header      http.Header
		body        string
		wantStatus  int
		wantCode    int
		wantType    string
		wantMessage string
	}{
		{"NoCredentials", "POST", "/oauth2/token/", form(), "grant_type=client_credentials", 401, 40001, "NotAuthenticated", badCreds},
		{"WrongSecret", "POST", "/oauth2/token/", form(basic("id", "nope")), "grant_type=client_credentials", 401, 40001, "NotAuthenticated", badCreds},
		{"WrongID", "POST", "/oauth2/token/", form(basic("nope", "secret")), "grant_type=client_credentials", 401, 40001, "NotAuthenticated", badCreds},
		{"SwappedCredentials", "POST", "/oauth2/token/", form(basic("secret", "id")), "grant_type=client_credentials", 401, 40001, "NotAuthenticated", badCreds},
		{"BearerInsteadOfBasic", "POST", "/oauth2/token/", form(http.Header{"Authorization": {"Bearer secret"}}), "grant_type=client_credentials", 401, 40001, "NotAuthenticated", badCreds},
		{"MissingGrantType", "POST", "/oauth2/token/", form(basic("id", "secret")), "", 400, 20000, "ValidationError", "grant_type: This field is required."},
		{"WrongGrantType", "POST", "/oauth2/token/", form(basic("id", "secret")), "grant_type=password", 400, 20000, "ValidationError", `grant_type: "password" is not a supported grant type; use client_credentials.`},
		{"GrantTypeNotForm", "POST", "/oauth2/token/", http.Header{"Authorization": basic("id", "secret")["Authorization"], "Content-Type": {"application/json"}}, `{"grant_type":"client_credentials"}`, 400, 20000, "ValidationError", "grant_type: This field is required."},
		{"Get", "GET", "/oauth2/token/", basic("id", "secret"), "", 405, 40500, "MethodNotAllowed", `Method "GET" not allowed.`},
		{"NoTrailingSlash", "POST", "/oauth2/token", form(basic("id", "secret")), "grant_type=client_credentials", 404, 40400, "NotFound", "Not found."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := send(t, s, tt.method, tt.path, tt.header, tt.body)
			checkError(t, a, tt.wantStatus, tt.wantCode, tt.wantType, tt.wantMessage)
			if tt.wantStatus == 401 && a.body != nil {
				d, _ := a.body["detail"].(map[string]any)
				if d["code"] != "not_authenticated" {
					t.Errorf("detail.code = %v, want not_authenticated", d["code"])
				}
			}
			if tt.wantStatus == 405 && a.header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", a.header.Get("Allow"))
			}
		})
	}
}

func TestCreate_RequiresValidBearer(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := start(t, sandbox.Options{TokenTTL: time.Second, Now: clk.Now})
	tok := token(t, s)
	body := customerJSON("c1", "a@example.com", "INDIVIDUAL")
	const notProvided = "Authentication credentials were not provided."

	for _, auth := range []string{"", "Basic " + tok, "Bearer", "Bearer " + strings.Repeat("0", 64), tok} {
		a := send(t, s, "POST", "/api/v1/customers/", http.Header{"Authorization": {auth}, "Content-Type": {"application/json"}}, body)
		checkError(t, a, 401, 40001, "NotAuthenticated", notProvided)
		if d, _ := a.body["detail"].(map[string]any); d["code"] != "not_authenticated" {
			t.Errorf("Authorization %q: detail.code = %v, want not_authenticated", auth, d["code"])
		}
	}

	clk.Advance(time.Second - time.Nanosecond)
	a := send(t, s, "POST", "/api/v1/customers/", http.Header{"Authorization": {"bearer " + tok}}, body)
	if a.status != http.StatusCreated {
		t.Fatalf("create just before expiry (lower-case scheme): status = %d, want 201; body %s", a.status, a.raw)
	}
	clk.Advance(time.Nanosecond)
	a = create(t, s, tok, customerJSON("c2", "b@example.com", "INDIVIDUAL"))
	checkError(t, a, 401, 40001, "NotAuthenticated", notProvided)

	if got, want := s.Stats(), (sandbox.Stats{Requests: 7, TokenRequests: 1, Created: 1, Unauthorized: 6}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	if _, ok := s.Customer("c2"); ok {
		t.Errorf("Customer(c2) found, want not stored after a 401")
	}
}

func TestCreate_StoresCustomer(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := start(t, sandbox.Options{Now: clk.Now})
	a := create(t, s, token(t, s), `{"customerId":"7142b065","email":"Ann.Lee+x@Example.com","type":"BUSINESS"}`)
	if a.status != http.StatusCreated {
		t.Fatalf("status = %d, want 201; body %s", a.status, a.raw)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	want := map[string]any{
		"customerId": "7142b065",
		"email":      "Ann.Lee+x@Example.com",
		"type":       "BUSINESS",
		"isActive":   true,
		"createdAt":  "2025-01-02T03:04:05.000006Z",
	}
	if !mapsEqual(a.body, want) {
		t.Errorf("body = %v, want %v", a.body, want)
	}
	c, ok := s.Customer("7142b065")
	wantC := sandbox.Customer{CustomerID: "7142b065", Email: "Ann.Lee+x@Example.com", Type: "BUSINESS", IsActive: true, CreatedAt: clk.Now()}
	if !ok || !customerEqual(c, wantC) {
		t.Errorf("Customer(7142b065) = %+v, %v, want %+v, true", c, ok, wantC)
	}
}

func TestCreate_Validates(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{})
	tok := token(t, s)
	long := strings.Repeat("a", 254-len("@example.com"))
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   int
		wantType   string
		wantMsg    string            // exact message, or a prefix for parse errors
		wantFields map[string]string // field -> its one reason in detail
	}{
		{"Individual", `{"customerId":"ok1","email":"a@example.com","type":"INDIVIDUAL"}`, 201, 0, "", "", nil},
		{"Business", `{"customerId":"ok2","email":"b@example.com","type":"BUSINESS"}`, 201, 0, "", "", nil},
		{"ExtraFieldsIgnored", `{"customerId":"ok3","email":"c@example.com","type":"BUSINESS","name":"x","isActive":false}`, 201, 0, "", "", nil},
		{"Email254Chars", `{"customerId":"ok4","email":"` + long + `@example.com","type":"BUSINESS"}`, 201, 0, "", "", nil},
		{"Empty", ``, 400, 20001, "ParseError", "JSON parse error - ", nil},
		{"Truncated", `{"customerId":`, 400, 20001, "ParseError", "JSON parse error - ", nil},
		{"Array", `[{"customerId":"x","email":"a@example.com","type":"INDIVIDUAL"}]`, 400, 20001, "ParseError", "JSON parse error - expected a JSON object, got array", nil},
		{"String", `"hello"`, 400, 20001, "ParseError", "JSON parse error - expected a JSON object, got string", nil},
		{"TrailingData", `{"customerId":"x","email":"a@example.com","type":"INDIVIDUAL"} {}`, 400, 20001, "ParseError", "JSON parse error - ", nil},
		{"MissingEverything", `{}`, 400, 20000, "ValidationError",
			"customerId: This field is required.; email: This field is required.; type: This field is required.",
			map[string]string{"customerId": "This field is required.", "email": "This field is required.", "type": "This field is required."}},
		{"BlankCustomerID", `{"customerId":"  ","email":"a@example.com","type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"customerId: This field may not be blank.", map[string]string{"customerId": "This field may not be blank."}},
		{"NumericCustomerID", `{"customerId":12,"email":"a@example.com","type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"customerId: Not a valid string.", map[string]string{"customerId": "Not a valid string."}},
		{"NullEmail", `{"customerId":"x","email":null,"type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"email: This field may not be null.", map[string]string{"email": "This field may not be null."}},
		{"EmailWithoutAt", `{"customerId":"x","email":"ann.example.com","type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"email: Enter a valid email address.", map[string]string{"email": "Enter a valid email address."}},
		{"EmailWithDisplayName", `{"customerId":"x","email":"Ann <ann@example.com>","type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"email: Enter a valid email address.", map[string]string{"email": "Enter a valid email address."}},
		{"EmailInAngles", `{"customerId":"x","email":"<ann@example.com>","type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"email: Enter a valid email address.", map[string]string{"email": "Enter a valid email address."}},
		{"EmailWithSpaces", `{"customerId":"x","email":" ann@example.com ","type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"email: Enter a valid email address.", map[string]string{"email": "Enter a valid email address."}},
		{"EmailTwoAddresses", `{"customerId":"x","email":"a@example.com, b@example.com","type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"email: Enter a valid email address.", map[string]string{"email": "Enter a valid email address."}},
		{"Email255Chars", `{"customerId":"x","email":"a` + long + `@example.com","type":"INDIVIDUAL"}`, 400, 20000, "ValidationError",
			"email: Ensure this field has no more than 254 characters.", map[string]string{"email": "Ensure this field has no more than 254 characters."}},
		{"LowerCaseType", `{"customerId":"x","email":"a@example.com","type":"individual"}`, 400, 20000, "ValidationError",
			`type: "individual" is not a valid choice.`, map[string]string{"type": `"individual" is not a valid choice.`}},
		{"UnknownType", `{"customerId":"x","email":"a@example.com","type":"PERSON"}`, 400, 20000, "ValidationError",
			`type: "PERSON" is not a valid choice.`, map[string]string{"type": `"PERSON" is not a valid choice.`}},
		{"TwoBadFields", `{"customerId":"x","email":"nope","type":true}`, 400, 20000, "ValidationError",
			"email: Enter a valid email address.; type: Not a valid string.",
			map[string]string{"email": "Enter a valid email address.", "type": "Not a valid string."}},
	}
	var wantCreated, wantRejected int64
	for _, tt := range tests {
		if tt.wantStatus == 201 {
			wantCreated++
		} else {
			wantRejected++
		}
	}

	t.Run("Cases", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				a := create(t, s, tok, tt.body)
				if tt.wantStatus == 201 {
					if a.status != 201 {
						t.Fatalf("create(%s) status = %d, want 201; body %s", tt.body, a.status, a.raw)
					}
					return
				}
				checkErrorPrefix(t, a, tt.wantStatus, tt.wantCode, tt.wantType, tt.wantMsg)
				d, _ := a.body["detail"].(map[string]any)
				for field, why := range tt.wantFields {
					if got, want := fmt.Sprint(d[field]), fmt.Sprint([]any{why}); got != want {
						t.Errorf("detail[%q] = %s, want %s", field, got, want)
					}
				}
				if tt.wantFields != nil && len(d) != len(tt.wantFields)+1 {
					t.Errorf("detail = %v, want message and %d fields", d, len(tt.wantFields))
				}
			})
		}
	})

	st := s.Stats()
	if st.Created != wantCreated || st.Rejected != wantRejected || st.Requests != int64(len(tests)) {
		t.Errorf("Stats() = %+v, want Requests %d, Created %d, Rejected %d", st, len(tests), wantCreated, wantRejected)
	}
	if n := len(s.Customers()); n != int(wantCreated) {
		t.Errorf("len(Customers()) = %d, want %d", n, wantCreated)
	}
}

func TestCreate_RefusesDuplicates(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"Memory", "SQLite"} {
		for _, unique := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/UniqueEmail=%v", backend, unique), func(t *testing.T) {
				t.Parallel()
				opts := sandbox.Options{UniqueEmail: unique}
				if backend == "SQLite" {
					opts.DBPath = filepath.Join(t.TempDir(), "ripio.db")
				}
				s := start(t, opts)
				tok := token(t, s)

				if a := create(t, s, tok, customerJSON("c1", "ann@example.com", "INDIVIDUAL")); a.status != 201 {
					t.Fatalf("first create: status = %d, want 201; body %s", a.status, a.raw)
				}
				a := create(t, s, tok, customerJSON("c1", "other@example.com", "BUSINESS"))
				checkError(t, a, 400, 20000, "ValidationError", "customerId already exists")

				a = create(t, s, tok, customerJSON("c2", "ANN@example.COM", "INDIVIDUAL"))
				wantDup := int64(1)
				if unique {
					wantDup++
					checkError(t, a, 400, 20000, "ValidationError", "email already exists")
				} else if a.status != 201 {
					t.Errorf("same email, other id, UniqueEmail off: status = %d, want 201; body %s", a.status, a.raw)
				}

				if c, _ := s.Customer("c1"); c.Email != "ann@example.com" || c.Type != "INDIVIDUAL" {
					t.Errorf("Customer(c1) = %+v, want the first one unchanged", c)
				}
				st := s.Stats()
				if st.Duplicates != wantDup || st.Created != 3-wantDup || st.Rejected != 0 {
					t.Errorf("Stats() = %+v, want Duplicates %d, Created %d", st, wantDup, 3-wantDup)
				}
			})
		}
	}
}

func TestCreate_ConcurrentDuplicatesStoreOnce(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"Memory", "SQLite"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			opts := sandbox.Options{UniqueEmail: true}
			if backend == "SQLite" {
				opts.DBPath = filepath.Join(t.TempDir(), "ripio.db")
			}
			s := start(t, opts)
			tok := token(t, s)
			const n = 24
			statuses := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					// Half collide on the id, half on the email only.
					id := "same"
					if i%2 == 1 {
						id = fmt.Sprintf("other-%d", i)
					}
					// Not create: t.Fatal must not be called off the test goroutine.
					a, err := sendContext(context.Background(), s, "POST", "/api/v1/customers/", bearer(tok), customerJSON(id, "Same@example.com", "INDIVIDUAL"))
					if err != nil {
						t.Errorf("create %d: %v", i, err)
					}
					statuses[i] = a.status
				})
			}
			wg.Wait()
			created := 0
			for _, st := range statuses {
				switch st {
				case 201:
					created++
				case 400:
				default:
					t.Errorf("status %d, want 201 or 400", st)
				}
			}
			if created != 1 || len(s.Customers()) != 1 {
				t.Errorf("%d answers 201 and %d customers stored, want 1 and 1", created, len(s.Customers()))
			}
			if got, want := s.Stats(), (sandbox.Stats{Requests: n, TokenRequests: 1, Created: 1, Duplicates: n - 1}); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
		})
	}
}

func TestServer_PersistsAcrossServers(t *testing.T) {
	t.Parallel()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "sub", "ripio.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	opts := sandbox.Options{DBPath: path, Now: clk.Now}

	s1 := start(t, opts)
	tok := token(t, s1)
	for _, body := range []string{customerJSON("b", "b@example.com", "BUSINESS"), customerJSON("a", "a@example.com", "INDIVIDUAL")} {
		if a := create(t, s1, tok, body); a.status != 201 {
			t.Fatalf("create on the first server: status = %d; body %s", a.status, a.raw)
		}
		clk.Advance(time.Millisecond)
	}
	want := s1.Customers()
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s1.Customers() != nil {
		t.Errorf("Customers() after Close = %v, want nil", s1.Customers())
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("database mode = %v, want 0600", mode)
	}

	s2 := start(t, opts)
	got := s2.Customers()
	if len(got) != 2 || got[0].CustomerID != "a" || got[1].CustomerID != "b" {
		t.Fatalf("Customers() on the second server = %+v, want a and b", got)
	}
	for i := range got {
		if !customerEqual(got[i], want[i]) {
			t.Errorf("Customers()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	tok = token(t, s2)
	checkError(t, create(t, s2, tok, customerJSON("a", "new@example.com", "INDIVIDUAL")), 400, 20000, "ValidationError", "customerId already exists")
	if a := create(t, s2, tok, customerJSON("c", "c@example.com", "INDIVIDUAL")); a.status != 201 {
		t.Fatalf("new customer on the second server: status = %d; body %s", a.status, a.raw)
	}
	if err := s2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s3 := start(t, opts)
	if n := len(s3.Customers()); n != 3 {
		t.Errorf("third server: len(Customers()) = %d, want 3", n)
	}
}

func TestCreate_Throttles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		rate           float64
		burst          int
		retryAfter     bool
		wantRetryAfter string
		refill         time.Duration // after which one more create passes
	}{
		{"RetryAfterOneSecond", 1, 2, true, "1", time.Second},
		{"RetryAfterRoundsUp", 0.4, 2, true, "3", 2500 * time.Millisecond},
		{"FastRateStillOneSecond", 100, 2, true, "1", 10 * time.Millisecond},
		{"NoRetryAfter", 1, 2, false, "", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			s := start(t, sandbox.Options{RateLimit: tt.rate, RateBurst: tt.burst, RetryAfter: tt.retryAfter, Now: clk.Now})
			tok := token(t, s)
			for i := range tt.burst {
				if a := create(t, s, tok, customerJSON(fmt.Sprint("burst", i), "a@example.com", "INDIVIDUAL")); a.status != 201 {
					t.Fatalf("create %d within the burst: status = %d, want 201; body %s", i, a.status, a.raw)
				}
			}
			a := create(t, s, tok, customerJSON("over", "a@example.com", "INDIVIDUAL"))
			checkError(t, a, 429, 42900, "Throttled", "Request was throttled.")
			if got := a.header.Get("Retry-After"); got != tt.wantRetryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetryAfter)
			}
			// A throttled request takes no token: after the refill one more
			// passes, and only one.
			clk.Advance(tt.refill)
			if a := create(t, s, tok, customerJSON("over", "a@example.com", "INDIVIDUAL")); a.status != 201 {
				t.Errorf("create after %v: status = %d, want 201; body %s", tt.refill, a.status, a.raw)
			}
			checkError(t, create(t, s, tok, customerJSON("over2", "a@example.com", "INDIVIDUAL")), 429, 42900, "Throttled", "Request was throttled.")
			want := sandbox.Stats{Requests: int64(tt.burst) + 3, TokenRequests: 1, Created: int64(tt.burst) + 1, Throttled: 2}
			if got := s.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
		})
	}
}

func TestServer_SetRateLimit(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.DefaultOptions())
	tok := token(t, s)
	body := func(i int) string { return customerJSON(fmt.Sprint("c", i), "a@example.com", "INDIVIDUAL") }
	for i := range 5 {
		if a := create(t, s, tok, body(i)); a.status != 201 {
			t.Fatalf("unlimited create %d: status = %d", i, a.status)
		}
	}
	s.SetRateLimit(0.001, 1)
	if a := create(t, s, tok, body(10)); a.status != 201 {
		t.Fatalf("first create after SetRateLimit: status = %d, want 201 (full bucket)", a.status)
	}
	a := create(t, s, tok, body(11))
	checkError(t, a, 429, 42900, "Throttled", "Request was throttled.")
	if ra := a.header.Get("Retry-After"); ra != "1000" && ra != "999" {
		t.Errorf("Retry-After = %q, want about 1000 (DefaultOptions turns it on)", ra)
	}
	s.SetRateLimit(0, 0)
	if a := create(t, s, tok, body(12)); a.status != 201 {
		t.Errorf("create after SetRateLimit(0, 0): status = %d, want 201", a.status)
	}
}

func TestCreate_InjectsFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       sandbox.Options
		wantStatus int // 0: no answer
		wantCode   int
		wantType   string
		wantStored bool
		wantStats  sandbox.Stats
	}{
		{"FailBeforeCommit", sandbox.Options{FailBeforeCommit: 1}, 503, 50300, "ServiceUnavailable", false,
			sandbox.Stats{Requests: 1, TokenRequests: 1, FailedBeforeCommit: 1}},
		{"FailAfterCommit", sandbox.Options{FailAfterCommit: 1}, 500, 50000, "ServerError", true,
			sandbox.Stats{Requests: 1, TokenRequests: 1, Created: 1, FailedAfterCommit: 1}},
		{"DropAfterCommit", sandbox.Options{DropAfterCommit: 1}, 0, 0, "", true,
			sandbox.Stats{Requests: 1, TokenRequests: 1, Created: 1, Dropped: 1}},
		{"HangAfterCommit", sandbox.Options{HangAfterCommit: 1}, 0, 0, "", true,
			sandbox.Stats{Requests: 1, TokenRequests: 1, Created: 1, Hung: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, tt.opts)
			tok := token(t, s)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			a, err := sendContext(ctx, s, "POST", "/api/v1/customers/", bearer(tok), customerJSON("c1", "a@example.com", "INDIVIDUAL"))
			if tt.wantStatus == 0 {
				if err == nil {
					t.Fatalf("create answered %d, want no answer; body %s", a.status, a.raw)
				}
				if tt.opts.HangAfterCommit > 0 && ctx.Err() == nil {
					t.Errorf("create failed with %v before the client gave up, want a hang", err)
				}
				if tt.opts.DropAfterCommit > 0 && ctx.Err() != nil {
					t.Errorf("create failed with %v only when the client gave up, want a closed connection", err)
				}
			} else {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				checkError(t, a, tt.wantStatus, tt.wantCode, tt.wantType, "")
			}
			if _, ok := s.Customer("c1"); ok != tt.wantStored {
				t.Errorf("Customer(c1) found = %v, want %v", ok, tt.wantStored)
			}
			waitFor(t, func() bool { return s.Stats() == tt.wantStats }, func() string {
				return fmt.Sprintf("Stats() = %+v, want %+v", s.Stats(), tt.wantStats)
			})
		})
	}
}

func TestServer_SeedReproducesFaults(t *testing.T) {
	t.Parallel()
	run := func(seed int64) []int {
		s := start(t, sandbox.Options{Seed: seed, FailBeforeCommit: 0.3, FailAfterCommit: 0.3})
		tok := token(t, s)
		var statuses []int
		for i := range 30 {
			statuses = append(statuses, create(t, s, tok, customerJSON(fmt.Sprint("c", i), "a@example.com", "INDIVIDUAL")).status)
		}
		return statuses
	}
	a, b := run(42), run(42)
	if !slices.Equal(a, b) {
		t.Errorf("two runs with Seed 42 answered\n%v\n%v\nwant the same", a, b)
	}
	for _, want := range []int{201, 500, 503} {
		if !slices.Contains(a, want) {
			t.Errorf("statuses %v lack %d, want a mix", a, want)
		}
	}
}

func TestCreate_Latency(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{Latency: 50 * time.Millisecond, LatencyJitter: 20 * time.Millisecond})
	tok := token(t, s)
	begin := time.Now()
	if a := create(t, s, tok, customerJSON("c1", "a@example.com", "INDIVIDUAL")); a.status != 201 {
		t.Fatalf("status = %d, want 201", a.status)
	}
	if d := time.Since(begin); d < 50*time.Millisecond {
		t.Errorf("create took %v, want at least the 50ms latency", d)
	}
}

func TestServer_CloseReleasesWaitingHandlers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  sandbox.Options
		ready func(sandbox.Stats) bool
	}{
		{"Hang", sandbox.Options{HangAfterCommit: 1}, func(s sandbox.Stats) bool { return s.Hung == 1 }},
		{"Latency", sandbox.Options{Latency: time.Hour}, func(s sandbox.Stats) bool { return s.Requests == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, tt.opts)
			tok := token(t, s)
			errc := make(chan error, 1)
			go func() {
				_, err := sendContext(context.Background(), s, "POST", "/api/v1/customers/", bearer(tok), customerJSON("c1", "a@example.com", "INDIVIDUAL"))
				errc <- err
			}()
			waitFor(t, func() bool { return tt.ready(s.Stats()) }, func() string { return fmt.Sprintf("Stats() = %+v", s.Stats()) })

			closed := make(chan error, 1)
			go func() { closed <- s.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return within 5s")
			}
			select {
			case err := <-errc:
				if err == nil {
					t.Error("the waiting request got an answer, want a closed connection")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the waiting request did not return within 5s of Close")
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestServer_UnknownRoutes(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{})
	tok := token(t, s)
	tests := []struct {
		method, path string
		wantStatus   int
		wantCode     int
		wantType     string
	}{
		{"POST", "/", 404, 40400, "NotFound"},
		{"POST", "/api/v1/customers", 404, 40400, "NotFound"},
		{"POST", "/api/v1/customers/c1/deactivate/", 404, 40400, "NotFound"},
		{"GET", "/api/v1/customers/", 405, 40500, "MethodNotAllowed"},
		{"PUT", "/api/v1/customers/", 405, 40500, "MethodNotAllowed"},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			t.Parallel()
			a := send(t, s, tt.method, tt.path, bearer(tok), customerJSON("c1", "a@example.com", "INDIVIDUAL"))
			checkError(t, a, tt.wantStatus, tt.wantCode, tt.wantType, "")
		})
	}
}

func TestServer_HandlerServesElsewhere(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)

	req, _ := http.NewRequest("POST", hs.URL+"/oauth2/token/", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(s.ClientID(), s.ClientSecret())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("token through Handler(): status = %d, want 200", resp.StatusCode)
	}
	if got := s.Stats().TokenRequests; got != 1 {
		t.Errorf("Stats().TokenRequests = %d, want 1", got)
	}
}

func TestServer_LogsNoSecrets(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var lines []string
	s := start(t, sandbox.Options{
		ClientSecret: "very-secret-value",
		Logf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, fmt.Sprintf(format, args...))
		},
	})
	tok := token(t, s)
	create(t, s, tok, customerJSON("c1", "private@example.com", "INDIVIDUAL"))
	requestToken(t, s, "x", "wrong-secret", "grant_type=client_credentials")

	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 3 {
		t.Errorf("got %d log lines, want 3: %q", len(lines), lines)
	}
	for _, l := range lines {
		for _, secret := range []string{"very-secret-value", "wrong-secret", tok, "private@example.com"} {
			if strings.Contains(l, secret) {
				t.Errorf("log line %q contains %q", l, secret)
			}
		}
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "/api/v1/customers/ 201") }) {
		t.Errorf("log %q lacks the create's status", lines)
	}
}

func TestNewServer_RefusesBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  sandbox.Options
		field string
	}{
		{"NegativeTTL", sandbox.Options{TokenTTL: -time.Second}, "TokenTTL"},
		{"NegativeRate", sandbox.Options{RateLimit: -1}, "RateLimit"},
		{"NegativeBurst", sandbox.Options{RateBurst: -1}, "RateBurst"},
		{"NegativeLatency", sandbox.Options{Latency: -1}, "Latency"},
		{"FractionAboveOne", sandbox.Options{DropAfterCommit: 1.5}, "DropAfterCommit"},
		{"NegativeFraction", sandbox.Options{FailBeforeCommit: -0.1}, "FailBeforeCommit"},
		{"AfterCommitSumAboveOne", sandbox.Options{FailAfterCommit: 0.6, HangAfterCommit: 0.6}, "FailAfterCommit+DropAfterCommit+HangAfterCommit"},
		{"BadAddr", sandbox.Options{Addr: "not an address"}, "listen"},
		{"DBPathInMissingDir", sandbox.Options{DBPath: "/nonexistent/dir/ripio.db"}, "/nonexistent/dir/ripio.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := sandbox.NewServer(tt.opts)
			if err == nil {
				s.Close()
				t.Fatalf("NewServer(%+v) = nil error, want one naming %s", tt.opts, tt.field)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("NewServer error = %q, want it to name %s", err, tt.field)
			}
		})
	}
}

func TestDefaultOptions(t *testing.T) {
	t.Parallel()
	o := sandbox.DefaultOptions()
	if o.Addr != "127.0.0.1:0" || o.ClientID != "sandbox-client" || o.ClientSecret != "sandbox-secret" ||
		o.TokenTTL != time.Hour || !o.RetryAfter || o.Now == nil {
		t.Errorf("DefaultOptions() = %+v, want the documented defaults with RetryAfter", o)
	}
	s := start(t, o)
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || strings.HasSuffix(s.URL(), "/") {
		t.Errorf("URL() = %q, want http://127.0.0.1:PORT", s.URL())
	}
}

// start runs a server that the test's cleanup closes.
func start(t *testing.T, opts sandbox.Options) *sandbox.Server {
	t.Helper()
	s, err := sandbox.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

type answer struct {
	status int
	header http.Header
	raw    string
	body   map[string]any // nil if raw is not a JSON object
}

func send(t *testing.T, s *sandbox.Server, method, path string, header http.Header, body string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := sendContext(ctx, s, method, path, header, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

func sendContext(ctx context.Context, s *sandbox.Server, method, path string, header http.Header, body string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &a.body)
	return a, nil
}

func requestToken(t *testing.T, s *sandbox.Server, id, secret, body string) answer {
	t.Helper()
	return send(t, s, "POST", "/oauth2/token/", form(basic(id, secret)), body)
}

// token returns a fresh access token from s.
func token(t *testing.T, s *sandbox.Server) string {
	t.Helper()
	a := requestToken(t, s, s.ClientID(), s.ClientSecret(), "grant_type=client_credentials")
	tok, _ := a.body["accessToken"].(string)
	if a.status != 200 || tok == "" {
		t.Fatalf("token: status %d, body %s", a.status, a.raw)
	}
	return tok
}

func create(t *testing.T, s *sandbox.Server, tok, body string) answer {
	t.Helper()
	return send(t, s, "POST", "/api/v1/customers/", bearer(tok), body)
}

func customerJSON(id, email, typ string) string {
	return `{"customerId":"` + id + `","email":"` + email + `","type":"` + typ + `"}`
}

func basic(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}}
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
}

// form adds the form content type to the headers h.
func form(hs ...http.Header) http.Header {
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for _, x := range hs {
		for k, v := range x {
			h[k] = v
		}
	}
	return h
}

// checkError checks that a is Ripio's error envelope with the given status,
// code and type, and message if it is not empty.
func checkError(t *testing.T, a answer, status, code int, typ, message string) {
	t.Helper()
	checkEnvelope(t, a, status, code, typ, func(got string) bool { return message == "" || got == message }, message)
}

// checkErrorPrefix is checkError with a message prefix.
func checkErrorPrefix(t *testing.T, a answer, status, code int, typ, prefix string) {
	t.Helper()
	checkEnvelope(t, a, status, code, typ, func(got string) bool { return strings.HasPrefix(got, prefix) }, prefix+"...")
}

func checkEnvelope(t *testing.T, a answer, status, code int, typ string, msgOK func(string) bool, wantMsg string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status = %d, want %d; body %s", a.status, status, a.raw)
		return
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if a.body == nil {
		t.Fatalf("body = %q, want a JSON object", a.raw)
	}
	if got := keys(a.body); !slices.Equal(got, []string{"code", "detail", "status", "type"}) {
		t.Errorf("envelope keys = %v, want code, detail, status, type; body %s", got, a.raw)
	}
	if a.body["code"] != float64(code) || a.body["type"] != typ || a.body["status"] != float64(status) {
		t.Errorf("envelope = %s, want code %d, type %s, status %d", a.raw, code, typ, status)
	}
	d, ok := a.body["detail"].(map[string]any)
	msg, _ := d["message"].(string)
	if !ok || !msgOK(msg) {
		t.Errorf("detail.message = %q, want %q; body %s", msg, wantMsg, a.raw)
	}
}

// waitFor polls cond for up to 5s, for states reached after the client has
// its answer or while it waits for one.
func waitFor(t *testing.T, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", describe())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func keys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return sorted(ks)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func mapsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func customerEqual(a, b sandbox.Customer) bool {
	return a.CustomerID == b.CustomerID && a.Email == b.Email && a.Type == b.Type &&
		a.IsActive == b.IsActive && a.CreatedAt.Equal(b.CreatedAt)
}

// clock is a settable Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
