package ripio_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// The credentials of every hand-written fake. They are long and unusual so
// that a search for them in error texts cannot match by accident.
const (
	testID     = "client-7f3a"
	testSecret = "sEcReT-q7Zx9Wv4Lm2Kp8"
)

// newClient returns a client of baseURL with the test credentials; edit
// changes the config first.
func newClient(t *testing.T, baseURL string, edit ...func(*ripio.Config)) *ripio.Client {
	t.Helper()
	cfg := ripio.Config{BaseURL: baseURL, ClientID: testID, ClientSecret: testSecret, Timeout: 5 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := ripio.New(cfg)
	if err != nil {
		t.Fatalf("ripio.New(%+v) = %v", cfg.BaseURL, err)
	}
	return c
}

// withTimeout sets Config.Timeout.
func withTimeout(d time.Duration) func(*ripio.Config) {
	return func(c *ripio.Config) { c.Timeout = d }
}

var ana = ripio.CreateCustomerRequest{CustomerID: "c-0001", Email: "ana@example.com", Type: ripio.Individual}

// fakeAPI is a hand-written Ripio on an httptest server. Its token endpoint
// issues tok-1, tok-2, ... (camelCase, one hour) unless token is set; create
// answers the customers path. Both count their requests.
type fakeAPI struct {
	URL    string
	tokens atomic.Int64 // token requests
	writes atomic.Int64 // create requests
}

func newFakeAPI(t *testing.T, token, create http.HandlerFunc) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	if token == nil {
		token = f.issueToken
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth2/token/", func(w http.ResponseWriter, r *http.Request) {
		f.tokens.Add(1)
		token(w, r)
	})
	mux.HandleFunc("/api/v1/customers/", func(w http.ResponseWriter, r *http.Request) {
		f.writes.Add(1)
		create(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// issueToken answers the next token, tok-N.
func (f *fakeAPI) issueToken(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"accessToken": "tok-%d", "expiresIn": 3600, "tokenType": "Bearer", "scope": "read write"}`, f.tokens.Load())
}

// answer writes a fixed answer.
func answer(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// created201 is the create answer for ana.
const created201 = `{"customerId": "c-0001", "email": "ana@example.com", "isActive": true, "createdAt": "2024-04-10T18:17:07.702533Z"}`

// echoCreated answers 201 with the create answer for the customer the
// request names, as a server that honours the partner's ids does.
func echoCreated(w http.ResponseWriter, r *http.Request) {
	var req struct{ CustomerID, Email, Type string }
	json.NewDecoder(r.Body).Decode(&req)
	data, _ := json.Marshal(map[string]any{"customerId": req.CustomerID, "email": req.Email, "type": req.Type, "isActive": true, "createdAt": "2024-04-10T18:17:07Z"})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write(data)
}

var jsonHeader = map[string]string{"Content-Type": "application/json"}

func TestNew_BaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		baseURL string
		ok      bool
		want    string // BaseURL() when ok
	}{
		{"https://skala-sandbox.ripio.com", true, "https://skala-sandbox.ripio.com"},
		{"https://skala.ripio.com/", true, "https://skala.ripio.com"},
		{"http://127.0.0.1:8080", true, "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/", true, "http://127.0.0.1:8080"},
		{"http://localhost:9", true, "http://localhost:9"},
		{"http://[::1]:9", true, "http://[::1]:9"},
		{"http://skala-sandbox.ripio.com", false, ""},
		{"http://10.0.0.7:8080", false, ""},
		{"http://127.0.0.1.nip.io", false, ""},
		{"http://localhost.example.com", false, ""},
		{"ftp://skala.ripio.com", false, ""},
		{"skala.ripio.com", false, ""},
		{"https://", false, ""},
		{"https://user:pw@skala.ripio.com", false, ""},
		{"https://skala.ripio.com?x=1", false, ""},
		{"https://skala.ripio.com#frag", false, ""},
		{"", false, ""},
	}
	for _, tt := range tests {
		c, err := ripio.New(ripio.Config{BaseURL: tt.baseURL, ClientID: testID, ClientSecret: testSecret})
		switch {
		case tt.ok && err != nil:
			t.Errorf("ripio.New(BaseURL %q) = %v, want no error", tt.baseURL, err)
		case tt.ok && c.BaseURL() != tt.want:
			t.Errorf("ripio.New(BaseURL %q).BaseURL() = %q, want %q", tt.baseURL, c.BaseURL(), tt.want)
		case !tt.ok && err == nil:
			t.Errorf("ripio.New(BaseURL %q) = nil error, want one", tt.baseURL)
		case !tt.ok && strings.Contains(err.Error(), testSecret):
			t.Errorf("ripio.New(BaseURL %q) = %q, which holds the secret", tt.baseURL, err)
		}
	}
}

func TestNew_Credentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id, secret string
		wantField  string // named in the error; "" for success
	}{
		{testID, testSecret, ""},
		{"", testSecret, "ClientID"},
		{testID, "", "ClientSecret"},
		{"", "", "ClientID"},
	}
	for _, tt := range tests {
		_, err := ripio.New(ripio.Config{BaseURL: "https://skala-sandbox.ripio.com", ClientID: tt.id, ClientSecret: tt.secret})
		switch {
		case tt.wantField == "" && err != nil:
			t.Errorf("ripio.New(id %q, secret %q) = %v, want no error", tt.id, tt.secret, err)
		case tt.wantField != "" && (err == nil || !strings.Contains(err.Error(), tt.wantField)):
			t.Errorf("ripio.New(id %q, secret %q) = %v, want an error naming %s", tt.id, tt.secret, err, tt.wantField)
		}
	}
}

// seen is what a fake server saw of one request.
type seen struct {
	method, path, userAgent, contentType, auth string
	form                                       url.Values
	body                                       map[string]any
}

// recorder is a fake that remembers every request and answers the token and
// a create with a customerId other than the one sent.
func recorder(t *testing.T) (baseURL string, requests func() []seen) {
	t.Helper()
	var (
		mu  sync.Mutex
		all []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{method: r.Method, path: r.URL.Path, userAgent: r.UserAgent(), contentType: r.Header.Get("Content-Type"), auth: r.Header.Get("Authorization")}
		data, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/oauth2/token/" {
			s.form, _ = url.ParseQuery(string(data))
			io.WriteString(w, `{"accessToken": "tok-rec", "expiresIn": 3600, "tokenType": "Bearer"}`)
		} else {
			if err := json.Unmarshal(data, &s.body); err != nil {
				t.Errorf("create body %q is not a JSON object: %v", data, err)
			}
			w.WriteHeader(http.StatusCreated)
			data, _ := json.Marshal(map[string]any{"customerId": s.body["customerId"], "email": s.body["email"], "isActive": true})
			w.Write(data)
		}
		mu.Lock()
		all = append(all, s)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), all...)
	}
}

func TestCreateCustomer_Requests(t *testing.T) {
	t.Parallel()
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(testID+":"+testSecret))
	tests := []struct {
		name      string
		slash     string // appended to the BaseURL
		userAgent string
		wantUA    string
		req       ripio.CreateCustomerRequest
	}{
		{"DefaultUserAgent", "", "", "bulkcreate/dev", ana},
		{"CustomUserAgentTrailingSlash", "/", "bulkcreate/1.2.3", "bulkcreate/1.2.3",
			ripio.CreateCustomerRequest{CustomerID: "b-9", Email: "ops@acme.example", Type: ripio.Business}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, requests := recorder(t)
			c := newClient(t, base+tt.slash, func(c *ripio.Config) { c.UserAgent = tt.userAgent })
			if _, err := c.CreateCustomer(t.Context(), tt.req); err != nil {
				t.Fatalf("CreateCustomer(%+v) = %v", tt.req, err)
			}
			got := requests()
			want := []seen{
				{
					method: "POST", path: "/oauth2/token/", userAgent: tt.wantUA,
					contentType: "application/x-www-form-urlencoded", auth: basic,
					form: url.Values{"grant_type": {"client_credentials"}},
				},
				{
					method: "POST", path: "/api/v1/customers/", userAgent: tt.wantUA,
					contentType: "application/json", auth: "Bearer tok-rec",
					body: map[string]any{"customerId": tt.req.CustomerID, "email": tt.req.Email, "type": string(tt.req.Type)},
				},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("CreateCustomer(%+v) sent\n%+v\nwant\n%+v", tt.req, got, want)
			}
		})
	}
}

func TestCreateCustomer_ReturnsServerCustomer(t *testing.T) {
	t.Parallel()
	createdAt := time.Date(2024, 4, 10, 18, 17, 7, 702533000, time.UTC)
	tests := []struct {
		name   string
		status int
		body   string
		want   ripio.Customer
	}{
		{"201", 201, created201,
			ripio.Customer{CustomerID: "c-0001", Email: "ana@example.com", Type: ripio.Individual, IsActive: true, CreatedAt: createdAt, IDKept: true}},
		{"200EmailOtherCase", 200, `{"customerId": "c-0001", "email": " ANA@example.com ", "type": "INDIVIDUAL", "isActive": true}`,
			ripio.Customer{CustomerID: "c-0001", Email: " ANA@example.com ", Type: ripio.Individual, IsActive: true, IDKept: true}},
		{"201OnlyID", 201, `{"customerId": "c-0001"}`,
			ripio.Customer{CustomerID: "c-0001", Email: "ana@example.com", Type: ripio.Individual, IDKept: true}},
		{"201OnlyEmail", 201, `{"email": "ana@example.com", "isActive": "yes"}`,
			ripio.Customer{CustomerID: "c-0001", Email: "ana@example.com", Type: ripio.Individual}},
		{"201NullID", 201, `{"customerId": null, "email": "ana@example.com"}`,
			ripio.Customer{CustomerID: "c-0001", Email: "ana@example.com", Type: ripio.Individual}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t, nil, answer(tt.status, jsonHeader, tt.body))
			got, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
			if err != nil || got != tt.want {
				t.Errorf("CreateCustomer(%+v) = %+v, %v, want %+v, nil", ana, got, err, tt.want)
			}
		})
	}
}

// TestCreateCustomer_NeverLeaksCredentials drives every error path a server
// can cause with answers that echo what the client sent, and looks for the
// secret and the token, whole or in part, in everything an error prints.
func TestCreateCustomer_NeverLeaksCredentials(t *testing.T) {
	t.Parallel()
	const token = "AcCeSsToKeN-5f3b9c1d7e2a"
	basic := base64.StdEncoding.EncodeToString([]byte(testID + ":" + testSecret))
	goodToken := answer(200, jsonHeader, `{"accessToken": "`+token+`", "expiresIn": 3600, "tokenType": "Bearer"}`)
	// atCut puts value across the 200-byte cut of a body snippet.
	atCut := func(prefix, value string) string {
		return prefix + strings.Repeat("x", 190-len(prefix)) + value + " and more text after it"
	}
	envelope := func(status int, msg string) string {
		return fmt.Sprintf(`{"code": 40001, "type": "NotAuthenticated", "detail": {"message": %q}, "status": %d}`, msg, status)
	}
	tests := []struct {
		name          string
		token, create http.HandlerFunc
	}{
		{"Token401EchoesSecret", answer(401, jsonHeader, envelope(401, "bad client_secret "+testSecret)), nil},
		{"Token401EchoesSecretEscaped", answer(401, jsonHeader, `{"code": 40001, "type": "NotAuthenticated", "detail": {"message": "bad \u0073EcReT-q7Zx9Wv4Lm2Kp8"}, "status": 401}`), nil},
		{"Token400EchoesBasic", answer(400, jsonHeader, `{"error": "invalid_client", "error_description": "Authorization: Basic `+basic+`"}`), nil},
		{"Token400EchoesForm", answer(400, nil, "grant_type=client_credentials&client_secret="+url.QueryEscape(testSecret)), nil},
		{"Token500HTMLEchoesSecretAtCut", answer(500, nil, atCut("<html>", testSecret)), nil},
		{"Token200NotJSONEchoesSecret", answer(200, nil, "<html>client secret "+testSecret+"</html>"), nil},
		{"Token200NotJSONEchoesToken", answer(200, nil, "<html>token "+token+"</html>"), nil},
		{"Token200TypeIsSecret", answer(200, jsonHeader, `{"accessToken": "`+token+`", "tokenType": "`+testSecret+`"}`), nil},
		{"Token200TypeIsToken", answer(200, jsonHeader, `{"accessToken": "`+token+`", "tokenType": "MAC `+token+`"}`), nil},
		{"Create401EchoesToken", goodToken, answer(401, jsonHeader, envelope(401, "token "+token+" is not valid"))},
		{"Create403EchoesSecret", goodToken, answer(403, jsonHeader, envelope(403, "client "+testSecret+" may not"))},
		{"Create400FieldEchoesToken", goodToken, answer(400, jsonHeader, `{"code": 20000, "type": "ValidationError", "detail": {"auth": ["Bearer `+token+`"]}, "status": 400}`)},
		{"Create429EchoesToken", goodToken, answer(429, map[string]string{"Retry-After": "3"}, "slow down, "+token)},
		{"Create500HTMLEchoesTokenAtCut", goodToken, answer(500, nil, atCut("<pre>Authorization: Bearer ", token))},
		{"Create502TypeEchoesToken", goodToken, answer(502, jsonHeader, `{"code": 1, "type": "`+token+`", "detail": {}, "status": 502}`)},
		{"CreateDropped", goodToken, func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }},
	}
	forbidden := map[string]string{"secret": testSecret, "basic credentials": basic, "token": token}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			create := tt.create
			if create == nil {
				create = echoCreated
			}
			f := newFakeAPI(t, tt.token, create)
			_, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
			if err == nil {
				t.Fatalf("CreateCustomer(%+v) = nil error, want one", ana)
			}
			texts := []string{
				fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err),
				ripio.Classify(err).Reason,
			}
			for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
				texts = append(texts, e.Error(), fmt.Sprintf("%#v", e))
			}
			for _, text := range texts {
				for what, value := range forbidden {
					if part, ok := leaked(text, value); ok {
						t.Errorf("CreateCustomer error text %q holds %q of the %s", text, part, what)
					}
				}
			}
			t.Logf("error: %v", err)
		})
	}
}

// leaked reports a piece of value, 8 bytes or the whole value, found in text.
func leaked(text, value string) (string, bool) {
	const window = 8
	for i := 0; i+window <= len(value); i++ {
		if strings.Contains(text, value[i:i+window]) {
			return value[i : i+window], true
		}
	}
	return "", false
}

// TestCreateCustomer_DoesNotFollowRedirects: a POST that is redirected must
// not be reported by whatever answers at the new place.
func TestCreateCustomer_DoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			var elsewhere atomic.Int64
			mux := http.NewServeMux()
			mux.HandleFunc("/elsewhere/", func(w http.ResponseWriter, r *http.Request) {
				elsewhere.Add(1)
				echoCreated(w, r)
			})
			mux.HandleFunc("/oauth2/token/", answer(200, jsonHeader, `{"accessToken": "t", "expiresIn": 3600}`))
			mux.HandleFunc("/api/v1/customers/", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere/", status)
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)

			_, err := newClient(t, srv.URL).CreateCustomer(t.Context(), ana)
			if v := ripio.Classify(err); v.Outcome != ripio.InDoubt || v.HTTPStatus != status {
				t.Errorf("Classify(CreateCustomer after a %d) = %+v, want in_doubt with status %d", status, v, status)
			}
			if n := elsewhere.Load(); n != 0 {
				t.Errorf("CreateCustomer followed the %d redirect: %d requests elsewhere, want 0", status, n)
			}
		})
	}
}

// TestCreateCustomer_ContextEnds: a call whose context is done before it
// starts is not sent; one cancelled while the server holds it may have been.
func TestCreateCustomer_ContextEnds(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	arrived := make(chan struct{}, 1)
	f := newFakeAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a client gone only after the body
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(hold) }) // before the server's Close, which waits for handlers
	c := newClient(t, f.URL)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.CreateCustomer(ctx, ana)
	if v := ripio.Classify(err); v.Outcome != ripio.NotSent {
		t.Errorf("Classify(CreateCustomer with a cancelled context) = %+v, want not_sent", v)
	}

	// Cancelled once the server holds the request, however long the token
	// took on a busy machine.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	go func() {
		<-arrived
		cancel()
	}()
	_, err = c.CreateCustomer(ctx, ana)
	if v := ripio.Classify(err); v.Outcome != ripio.InDoubt {
		t.Errorf("Classify(CreateCustomer cancelled in flight) = %+v, want in_doubt", v)
	}
}

// TestCreateCustomer_UnbelievableAnswersAreInDoubt: a 2xx counts as created
// only when it is the create answer for the customer sent; anything else may
// come from a proxy or another person's request, and the row's outcome is
// unknown.
func TestCreateCustomer_UnbelievableAnswersAreInDoubt(t *testing.T) {
	t.Parallel()
	html := map[string]string{"Content-Type": "text/html; charset=utf-8"}
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		reason string // a part of the verdict's reason
	}{
		{"200HTMLMaintenancePage", 200, html, "<!DOCTYPE html><html><head><title>Down for maintenance</title></head></html>", `200 text/html is not the create answer, outcome unknown: the answer is not JSON: "<!DOCTYPE html><html><head><title>Down for maintenance`},
		{"201NotJSON", 201, nil, "Created", `the answer is not JSON: "Created"`},
		{"204Empty", 204, nil, "", "the answer is empty"},
		{"201Array", 201, jsonHeader, `[{"customerId": "c-0001", "email": "ana@example.com"}]`, "JSON but not an object"},
		{"201String", 201, jsonHeader, `"ok"`, "JSON but not an object"},
		{"201Null", 201, jsonHeader, `null`, "JSON but not an object"},
		{"201OtherObject", 201, jsonHeader, `{"status": "ok"}`, "neither customerId nor email"},
		{"201WrappedAnswer", 201, jsonHeader, `{"data": {"customerId": "c-0001", "email": "ana@example.com"}}`, "neither customerId nor email"},
		{"201EmailNotString", 201, jsonHeader, `{"customerId": "c-0001", "email": ["ana@example.com"]}`, "not a string"},
		{"201OtherEmail", 201, jsonHeader, `{"customerId": "c-0001", "email": "bob@example.com"}`, "for another email"},
		{"201OtherEmailOnly", 201, jsonHeader, `{"email": "bob@example.com"}`, "for another email"},
		{"201OtherIDNoEmail", 201, jsonHeader, `{"customerId": "c-0002"}`, "for another customerId"},
		{"201TrailingGarbage", 201, jsonHeader, created201 + `<html>`, "not JSON"},
		{"200TooLong", 200, jsonHeader, `{"customerId": "c-0001", "email": "ana@example.com", "pad": "` + strings.Repeat("x", 1<<20) + `"}`, "the answer is longer than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t, nil, answer(tt.status, tt.header, tt.body))
			cust, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
			v := ripio.Classify(err)
			if v.Outcome != ripio.InDoubt || v.HTTPStatus != tt.status {
				t.Fatalf("Classify(CreateCustomer answered %d %.40q) = %+v (customer %+v), want in_doubt with status %d", tt.status, tt.body, v, cust, tt.status)
			}
			if _, ok := errors.AsType[*ripio.AnswerError](err); !ok {
				t.Errorf("CreateCustomer answered %d %.40q = %T, want a *ripio.AnswerError", tt.status, tt.body, err)
			}
			if !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("Classify(...).Reason = %q, want it to contain %q", v.Reason, tt.reason)
			}
			if len(v.Reason) > 220 || strings.ContainsAny(v.Reason, "\n\r") {
				t.Errorf("Classify(...).Reason = %q (%d bytes), want one line of at most about 200 bytes", v.Reason, len(v.Reason))
			}
			if strings.Contains(v.Reason, "bob@") {
				t.Errorf("Classify(...).Reason = %q quotes another person's email", v.Reason)
			}
		})
	}
}

// TestCreateCustomer_ServerAssignedID: an answer for the email sent under
// another id is a customer created by a server that numbers its own; the
// client says so, on the customer and for the target.
func TestCreateCustomer_ServerAssignedID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string // AssignedID
		kept bool   // IDKept: the answer named the id sent
	}{
		{"StringID", `{"customerId": "9b1d-srv", "email": "Ana@Example.com", "isActive": true}`, "9b1d-srv", false},
		{"NumberID", `{"customerId": 123456, "email": "ana@example.com"}`, "123456", false},
		{"SameID", created201, "", true},
		{"NoID", `{"email": "ana@example.com"}`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t, nil, answer(201, jsonHeader, tt.body))
			c := newClient(t, f.URL)
			if c.AssignsIDs() {
				t.Fatalf("AssignsIDs() before any call = true, want false")
			}
			cust, err := c.CreateCustomer(t.Context(), ana)
			if v := ripio.Classify(err); v.Outcome != ripio.Created {
				t.Fatalf("Classify(CreateCustomer answered %s) = %+v, want created", tt.body, v)
			}
			if cust.IDKept != tt.kept {
				t.Errorf("CreateCustomer answered %s: IDKept = %v, want %v", tt.body, cust.IDKept, tt.kept)
			}
			if cust.AssignedID != tt.want {
				t.Errorf("CreateCustomer answered %s: AssignedID = %q, want %q", tt.body, cust.AssignedID, tt.want)
			}
			wantID := cmp.Or(tt.want, ana.CustomerID)
			if cust.CustomerID != wantID {
				t.Errorf("CreateCustomer answered %s: CustomerID = %q, want %q", tt.body, cust.CustomerID, wantID)
			}
			if got := c.AssignsIDs(); got != (tt.want != "") {
				t.Errorf("AssignsIDs() after an answer %s = %v, want %v", tt.body, got, tt.want != "")
			}
		})
	}
}

// TestCreateCustomer_AnswerWithTheEmailSpelledAsTheServerKeepsIt: a server
// that keeps the email in another spelling of the same address (its domain
// in IDNA's ASCII form or the Unicode one, another Unicode normal form,
// another case) answers for the customer sent; it is created, not in doubt.
func TestCreateCustomer_AnswerWithTheEmailSpelledAsTheServerKeepsIt(t *testing.T) {
	t.Parallel()
	tests := []struct{ sent, answered string }{
		{"bo@münchen.de", "bo@xn--mnchen-3ya.de"},
		{"bo@xn--mnchen-3ya.de", "bo@münchen.de"},
		{"Bo@MÜNCHEN.de", "bo@xn--mnchen-3ya.de"},
		{"jos\u00e9@example.com", "jose\u0301@example.com"},
		{"Ana@Example.com", "ana@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.answered, func(t *testing.T) {
			t.Parallel()
			body := `{"customerId": "c-0001", "email": "` + tt.answered + `"}`
			f := newFakeAPI(t, nil, answer(201, jsonHeader, body))
			req := ana
			req.Email = tt.sent
			_, err := newClient(t, f.URL).CreateCustomer(t.Context(), req)
			if v := ripio.Classify(err); v.Outcome != ripio.Created {
				t.Errorf("Classify(CreateCustomer of %q answered %s) = %+v, want created", tt.sent, body, v)
			}
		})
	}
	// Another person stays another person.
	f := newFakeAPI(t, nil, answer(201, jsonHeader, `{"customerId": "c-0001", "email": "bo@xn--mnchen-4ya.de"}`))
	req := ana
	req.Email = "bo@münchen.de"
	if _, err := newClient(t, f.URL).CreateCustomer(t.Context(), req); ripio.Classify(err).Outcome != ripio.InDoubt {
		t.Errorf("CreateCustomer of bo@münchen.de answered for another domain: %v, want in doubt", err)
	}
}

// TestCreateCustomer_LeavesWhenLeaveReturns: the request reaches the server
// only once its Leave (a pacer's last wait) has returned, Leave is called
// once a request even when a fresh token sends it again, and a Leave that
// fails sends nothing.
func TestCreateCustomer_LeavesWhenLeaveReturns(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		arrived []time.Time
		refused atomic.Bool
	)
	api := newFakeAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived = append(arrived, time.Now())
		mu.Unlock()
		if refused.CompareAndSwap(false, true) {
			answer(401, jsonHeader, `{"code": 40001, "type": "NotAuthenticated", "detail": {"message": "token expired"}, "status": 401}`)(w, r)
			return
		}
		echoCreated(w, r)
	})
	c := newClient(t, api.URL)
	var leaves atomic.Int64
	var left time.Time
	req := ana
	req.Leave = func(context.Context) error {
		leaves.Add(1)
		time.Sleep(30 * time.Millisecond)
		left = time.Now()
		return nil
	}
	if _, err := c.CreateCustomer(t.Context(), req); err != nil {
		t.Fatalf("CreateCustomer = %v", err)
	}
	if n := leaves.Load(); n != 1 {
		t.Errorf("Leave called %d times for one create sent twice (401, fresh token), want 1", n)
	}
	if len(arrived) != 2 || arrived[0].Before(left) {
		t.Errorf("requests arrived at %v, Leave returned at %v: want two, the first after Leave", arrived, left)
	}

	stop := errors.New("budget out of reach")
	req.Leave = func(context.Context) error { return stop }
	_, err := c.CreateCustomer(t.Context(), req)
	if v := ripio.Classify(err); !errors.Is(err, stop) || v.Outcome != ripio.NotSent {
		t.Errorf("CreateCustomer with a failing Leave = %v (%v), want the Leave's error, not sent", err, v.Outcome)
	}
	if n := api.writes.Load(); n != 2 {
		t.Errorf("server saw %d creates, want 2 (none for the failed Leave)", n)
	}
}

// TestCreateCustomer_TheTimeoutStartsAfterLeave: a Leave that waits longer
// than the request's timeout (a pacer's wait) does not spend it: the
// request then has its whole timeout.
func TestCreateCustomer_TheTimeoutStartsAfterLeave(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, nil, echoCreated)
	c := newClient(t, api.URL, withTimeout(100*time.Millisecond))
	req := ana
	req.Leave = func(context.Context) error {
		time.Sleep(300 * time.Millisecond)
		return nil
	}
	if _, err := c.CreateCustomer(t.Context(), req); err != nil {
		t.Errorf("CreateCustomer after a Leave of 300ms with a timeout of 100ms = %v, want created", err)
	}
}
