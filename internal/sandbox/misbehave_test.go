package sandbox_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

func TestMisbehaviour_CreateHTML200(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{CreateHTML200: true})
	a := create(t, s, token(t, s), customerJSON("c1", "a@example.com", "INDIVIDUAL"))
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") || !strings.Contains(a.raw, "<html>") {
		t.Errorf("create = %d %q %q, want 200 text/html with a page", a.status, a.header.Get("Content-Type"), a.raw)
	}
	if n := len(s.Customers()); n != 0 {
		t.Errorf("customers stored = %d, want 0: the proxy answered", n)
	}
	// Without a valid token the API itself still answers.
	if a := create(t, s, "nope", customerJSON("c1", "a@example.com", "INDIVIDUAL")); a.status != http.StatusUnauthorized {
		t.Errorf("create with a bad token = %d, want 401", a.status)
	}
}

func TestMisbehaviour_AssignIDs(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{AssignIDs: true})
	tok := token(t, s)
	var ids []string
	for range 2 { // the same person twice: two customers
		a := create(t, s, tok, customerJSON("c1", "a@example.com", "INDIVIDUAL"))
		id, _ := a.body["customerId"].(string)
		if a.status != http.StatusCreated || id == "" || id == "c1" || a.body["email"] != "a@example.com" {
			t.Fatalf("create = %d %s, want 201 with an id of the server's own and the email sent", a.status, a.raw)
		}
		if _, ok := s.Customer(id); !ok {
			t.Errorf("Customer(%q) not found, want it stored under the id answered", id)
		}
		ids = append(ids, id)
	}
	if ids[0] == ids[1] || len(s.Customers()) != 2 {
		t.Errorf("two creates of one person: ids %v, %d customers; want two of each", ids, len(s.Customers()))
	}
}

func TestMisbehaviour_OtherEmail(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{OtherEmail: true})
	a := create(t, s, token(t, s), customerJSON("c1", "a@example.com", "INDIVIDUAL"))
	if email, _ := a.body["email"].(string); a.status != http.StatusCreated || strings.EqualFold(email, "a@example.com") || email == "" {
		t.Errorf("create = %d %s, want 201 with another email", a.status, a.raw)
	}
	if c, ok := s.Customer("c1"); !ok || c.Email != "a@example.com" {
		t.Errorf("Customer(c1) = %+v, %v; want it stored as sent", c, ok)
	}
}

func TestMisbehaviour_TokenEcho(t *testing.T) {
	t.Parallel()
	const id, secret = "echo-id", `s3cr/Et+Zq9 &x<é>"Kp8`
	want := map[string]string{
		"plain":        secret,
		"json":         `s3cr/Et+Zq9 \u0026x\u003cé\u003e\"Kp8`,
		"json-php":     `s3cr\/Et+Zq9 &x<\u00e9>\"Kp8`,
		"json-unicode": `\u0073\u0033\u0063\u0072\u002F`,
		"url":          url.QueryEscape(secret),
		"url-lower":    "s3cr%2fEt%2bZq9+%26x%3c%c3%a9%3e%22Kp8",
		"html":         "&#x73;&#x33;&#x63;&#x72;&#x2f;",
		"base64":       base64.StdEncoding.EncodeToString([]byte(secret)),
		"basic":        base64.StdEncoding.EncodeToString([]byte(id + ":" + secret)),
	}
	if len(want) != len(sandbox.EchoEncodings()) {
		t.Fatalf("EchoEncodings() = %v, want a case for each", sandbox.EchoEncodings())
	}
	for _, enc := range sandbox.EchoEncodings() {
		for _, status := range []int{401, 503} {
			t.Run(enc+"/"+strconv.Itoa(status), func(t *testing.T) {
				t.Parallel()
				s := start(t, sandbox.Options{ClientID: id, ClientSecret: secret, TokenEcho: enc, TokenEchoStatus: status})
				a := requestToken(t, s, id, secret, "grant_type=client_credentials")
				if a.status != status || !strings.Contains(a.raw, want[enc]) {
					t.Errorf("token = %d %s, want %d echoing %q", a.status, a.raw, status, want[enc])
				}
			})
		}
	}
}

func TestMisbehaviour_TokenNotFound(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{TokenNotFound: true})
	a := requestToken(t, s, s.ClientID(), s.ClientSecret(), "grant_type=client_credentials")
	if a.status != http.StatusNotFound || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
		t.Errorf("token = %d %q, want 404 text/html", a.status, a.header.Get("Content-Type"))
	}
}

func TestMisbehaviour_ThrottleAll(t *testing.T) {
	t.Parallel()
	s := start(t, sandbox.Options{ThrottleAll: 365 * 24 * time.Hour})
	tok := token(t, s)
	for range 3 {
		a := create(t, s, tok, customerJSON("c1", "a@example.com", "INDIVIDUAL"))
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "31536000" {
			t.Fatalf("create = %d Retry-After %q, want 429 Retry-After 31536000", a.status, a.header.Get("Retry-After"))
		}
	}
	if st := s.Stats(); st.Throttled != 3 || st.Created != 0 {
		t.Errorf("Stats() = %+v, want 3 throttled, none created", st)
	}
}

func TestNewServer_RefusesBadMisbehaviours(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		opts  sandbox.Options
		field string
	}{
		"UnknownEncoding":  {sandbox.Options{TokenEcho: "rot13"}, "TokenEcho"},
		"SuccessStatus":    {sandbox.Options{TokenEcho: "plain", TokenEchoStatus: 200}, "TokenEchoStatus"},
		"EchoAndNotFound":  {sandbox.Options{TokenEcho: "plain", TokenNotFound: true}, "TokenNotFound"},
		"NegativeThrottle": {sandbox.Options{ThrottleAll: -time.Second}, "ThrottleAll"},
	} {
		t.Run(name, func(t *testing.T) {
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
