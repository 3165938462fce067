package prismtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const spec = "../ripio/testdata/ramp-subset.openapi.yaml"

var httpClient = &http.Client{Timeout: 30 * time.Second}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func send(t *testing.T, method, u, contentType, body string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func tokenRequest(t *testing.T, m *Mock, auth bool, grantType string) answer {
	t.Helper()
	h := map[string]string{}
	if auth {
		h["Authorization"] = "Basic " + "Y2xpZW50OnNlY3JldA==" // client:secret
	}
	form := url.Values{"grant_type": {grantType}}.Encode()
	return send(t, http.MethodPost, m.URL+"/oauth2/token/", "application/x-www-form-urlencoded", form, h)
}

func createRequest(t *testing.T, m *Mock, path, bearer, body string) answer {
	t.Helper()
	h := map[string]string{}
	if bearer != "" {
		h["Authorization"] = "Bearer " + bearer
	}
	return send(t, http.MethodPost, m.URL+path, "application/json", body, h)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestValidRequestsHaveNoViolations(t *testing.T) {
	t.Parallel()
	m := Start(t, spec)

	tok := tokenRequest(t, m, true, "client_credentials")
	if tok.status/100 != 2 {
		t.Errorf("token: status %d, body %s", tok.status, tok.body)
	}
	var tr map[string]any
	if err := json.Unmarshal(tok.body, &tr); err != nil {
		t.Errorf("token: body %s: %v", tok.body, err)
	}
	for _, k := range []string{"accessToken", "expiresIn", "tokenType"} {
		if _, ok := tr[k]; !ok {
			t.Errorf("token: answer %s lacks %q", tok.body, k)
		}
	}
	t.Logf("token: %d %s %s", tok.status, tok.header.Get("Content-Type"), tok.body)

	cr := createRequest(t, m, "/api/v1/customers/", "x",
		`{"customerId":"c-0001","email":"ana@example.com","type":"INDIVIDUAL"}`)
	if cr.status/100 != 2 {
		t.Errorf("create: status %d, body %s", cr.status, cr.body)
	}
	var cu map[string]any
	if err := json.Unmarshal(cr.body, &cu); err != nil {
		t.Errorf("create: body %s: %v", cr.body, err)
	}
	if id, _ := cu["customerId"].(string); id == "" {
		t.Errorf("create: answer %s has no customerId", cr.body)
	}
	t.Logf("create: %d %s %s", cr.status, cr.header.Get("Content-Type"), cr.body)

	biz := createRequest(t, m, "/api/v1/customers/", "x",
		`{"customerId":"c-0002","email":"ops@acme.example","type":"BUSINESS"}`)
	if biz.status/100 != 2 {
		t.Errorf("create BUSINESS: status %d, body %s", biz.status, biz.body)
	}

	if v := m.Violations(); len(v) != 0 {
		t.Errorf("valid requests reported as violations:\n%s", strings.Join(v, "\n"))
	}
}

func TestInvalidCreateBodyIsReported(t *testing.T) {
	t.Parallel()
	m := Start(t, spec)

	a := createRequest(t, m, "/api/v1/customers/", "x", `{"customerId":"c-0001","type":"ALIEN"}`)
	if a.status/100 == 2 {
		t.Errorf("invalid create: status %d, want an error", a.status)
	}
	t.Logf("invalid create: %d %s %s", a.status, a.header.Get("sl-violations"), a.body)

	v := m.Violations()
	t.Logf("violations:\n%s", strings.Join(v, "\n"))
	if len(v) == 0 {
		t.Fatal("no violations reported for an invalid create body")
	}
	joined := strings.Join(v, "\n")
	if !containsAll(joined, "POST /api/v1/customers/:", "'email'", "type", "INDIVIDUAL, BUSINESS") {
		t.Errorf("violations do not name the missing email and the bad type:\n%s", joined)
	}

	// Violations accumulate; a later valid request adds none.
	ok := createRequest(t, m, "/api/v1/customers/", "x", `{"customerId":"c-0002","email":"a@b.example","type":"BUSINESS"}`)
	if ok.status != http.StatusCreated {
		t.Errorf("valid create after invalid: status %d", ok.status)
	}
	if v2 := m.Violations(); !reflect.DeepEqual(v2, v) {
		t.Errorf("violations changed after a valid request:\nbefore %q\nafter  %q", v, v2)
	}
}

func TestOtherViolationsAreReported(t *testing.T) {
	t.Parallel()
	m := Start(t, spec)

	cases := []struct {
		name       string
		do         func() answer
		wantStatus int
		want       []string // substrings of one violation
	}{
		{"create without bearer", func() answer {
			return createRequest(t, m, "/api/v1/customers/", "", `{"customerId":"c","email":"a@b.example","type":"INDIVIDUAL"}`)
		}, 401, []string{"POST /api/v1/customers/:", "Invalid security scheme used"}},
		{"create missing customerId", func() answer {
			return createRequest(t, m, "/api/v1/customers/", "x", `{"email":"a@b.example","type":"INDIVIDUAL"}`)
		}, 400, []string{"POST /api/v1/customers/:", "customerId"}},
		{"create bad email", func() answer {
			return createRequest(t, m, "/api/v1/customers/", "x", `{"customerId":"c","email":"not-an-email","type":"INDIVIDUAL"}`)
		}, 400, []string{"request.body.email", `format "email"`}},
		{"create without trailing slash", func() answer {
			return createRequest(t, m, "/api/v1/customers", "x", `{"customerId":"c","email":"a@b.example","type":"INDIVIDUAL"}`)
		}, 404, []string{"POST /api/v1/customers:", "NO_PATH_MATCHED"}},
		{"token without basic auth", func() answer {
			return tokenRequest(t, m, false, "client_credentials")
		}, 401, []string{"POST /oauth2/token/:", "Invalid security scheme used"}},
		{"token wrong grant", func() answer {
			return tokenRequest(t, m, true, "password")
		}, 422, []string{"POST /oauth2/token/:", "grant_type"}},
		{"token as JSON", func() answer {
			return send(t, http.MethodPost, m.URL+"/oauth2/token/", "application/json",
				`{"grant_type":"client_credentials"}`, map[string]string{"Authorization": "Basic Y2xpZW50OnNlY3JldA=="})
		}, 415, []string{"POST /oauth2/token/:", "application/x-www-form-urlencoded"}},
	}
	for _, c := range cases {
		before := len(m.Violations())
		a := c.do()
		if a.status != c.wantStatus {
			t.Errorf("%s: status %d, want %d (body %s)", c.name, a.status, c.wantStatus, a.body)
		}
		v := m.Violations()
		added := v[before:]
		found := false
		for _, s := range added {
			if containsAll(s, c.want...) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no violation containing %q among %q", c.name, c.want, added)
		}
		t.Logf("%s: %d -> %q", c.name, a.status, added)
	}
}

func TestConcurrentRequestsAreAttributed(t *testing.T) {
	t.Parallel()
	m := Start(t, spec)

	const valid, invalid = 30, 6
	var wg sync.WaitGroup
	statuses := make([]int, valid+invalid)
	for i := range valid + invalid {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"customerId":"c-%d","email":"u%d@example.com","type":"INDIVIDUAL"}`, i, i)
			if i >= valid {
				body = fmt.Sprintf(`{"customerId":"c-%d","type":"ALIEN"}`, i) // 2 violations
			}
			req, _ := http.NewRequest(http.MethodPost, m.URL+"/api/v1/customers/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer x")
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if want := map[bool]int{true: 201, false: 400}[i < valid]; s != want {
			t.Errorf("request %d: status %d, want %d", i, s, want)
		}
	}
	if v := m.Violations(); len(v) != 2*invalid {
		t.Errorf("got %d violations, want %d:\n%s", len(v), 2*invalid, strings.Join(v, "\n"))
	}
}

// TestParseViolations checks the log parser on output captured from Prism
// 5.16.0; it needs no Prism.
func TestParseViolations(t *testing.T) {
	const log = `[11:37:33 AM] › [CLI] …  awaiting  Starting Prism…
[11:37:33 AM] › [CLI] ▶  start     Prism is listening on http://127.0.0.1:4811
[11:37:44 AM] › [HTTP SERVER] post /oauth2/token/ ℹ  info      Request received
[11:37:44 AM] ›     [NEGOTIATOR] ℹ  info      Request contains an accept header: */*
[11:37:44 AM] ›     [VALIDATOR] ✔  success   The request passed the validation rules. Looking for the best response
[11:37:44 AM] ›     [NEGOTIATOR] ℹ  info      > Responding with "200"
[11:37:44 AM] › [HTTP SERVER] post /oauth2/token/ ℹ  info      Request received
[11:37:44 AM] ›     [VALIDATOR] ⚠  warning   Request did not pass the validation rules
[11:37:44 AM] ›     [VALIDATOR] ✖  error     Request body property grant_type must be equal to one of the allowed values: client_credentials
[11:37:44 AM] › [HTTP SERVER] post /oauth2/token/ ✖  error     Request terminated with error: https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY: Invalid request
[11:37:44 AM] › [HTTP SERVER] post /api/v1/customers/ ℹ  info      Request received
[11:37:44 AM] ›     [VALIDATOR] ⚠  warning   Request did not pass the validation rules
[11:37:44 AM] ›     [VALIDATOR] ✖  error     Request body must have required property 'email'
[11:37:44 AM] ›     [VALIDATOR] ✖  error     Request body property type must be equal to one of the allowed values: INDIVIDUAL, BUSINESS
[11:37:44 AM] ›     [NEGOTIATOR] ℹ  info      > Responding with "400"
[11:37:44 AM] ›     [VALIDATOR] ✖  error     Violation: request.body Request body must have required property 'email'
[11:37:44 AM] ›     [VALIDATOR] ✖  error     Violation: request.body.type Request body property type must be equal to one of the allowed values: INDIVIDUAL, BUSINESS
[11:37:44 AM] ›     [VALIDATOR] ✖  error     Violation: response.body Response body must have required property 'x'
[11:38:49 AM] › [HTTP SERVER] post /api/v1/customers ℹ  info      Request received
[11:38:49 AM] › [HTTP SERVER] post /api/v1/customers ✖  error     Request terminated with error: https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR: Route not resolved, no path matched
[11:38:49 AM] › [HTTP SERVER] get /__prismtest/flush/1 ℹ  info      Request received
[11:38:49 AM] › [HTTP SERVER] get /__prismtest/flush/1 ✖  error     Request terminated with error: https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR: Route not resolved, no path matched
`
	want := []string{
		"POST /oauth2/token/: Request body property grant_type must be equal to one of the allowed values: client_credentials",
		"POST /api/v1/customers/: request.body Request body must have required property 'email'",
		"POST /api/v1/customers/: request.body.type Request body property type must be equal to one of the allowed values: INDIVIDUAL, BUSINESS",
		"POST /api/v1/customers: prism refused the request: https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR: Route not resolved, no path matched",
	}
	if got := parseViolations(log); !reflect.DeepEqual(got, want) {
		t.Errorf("parseViolations:\n got %q\nwant %q", got, want)
	}
	// Coloured output (FORCE_COLOR set by a CI) parses the same.
	coloured := strings.ReplaceAll(log, "[VALIDATOR]", "\x1b[43m\x1b[30m[VALIDATOR]\x1b[39m\x1b[49m")
	if got := parseViolations(coloured); !reflect.DeepEqual(got, want) {
		t.Errorf("parseViolations (coloured):\n got %q\nwant %q", got, want)
	}
}
