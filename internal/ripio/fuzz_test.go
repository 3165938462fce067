package ripio_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// fuzzSecret stands for the client secret: no text parsed from an answer
// may show it.
const fuzzSecret = "fuzz-SECRET-9q"

// Bounds, in bytes, of the texts an error takes from an answer.
const (
	maxMessageBytes = 500 + len("…")
	maxTypeBytes    = 100 + len("…")
)

// checkLine fails unless s is printable on one log line: valid UTF-8, no
// control characters, no runs of spaces, no space at either end, no secret.
func checkLine(t *testing.T, what, s string, maxBytes int) {
	t.Helper()
	switch {
	case !utf8.ValidString(s):
		t.Errorf("%s = %q, not valid UTF-8", what, s)
	case strings.ContainsFunc(s, unicode.IsControl):
		t.Errorf("%s = %q, holds a control character", what, s)
	case strings.Contains(s, "  ") || s != strings.TrimSpace(s):
		t.Errorf("%s = %q, white space not collapsed", what, s)
	case strings.Contains(s, fuzzSecret):
		t.Errorf("%s = %q, holds the secret", what, s)
	case maxBytes > 0 && len(s) > maxBytes:
		t.Errorf("%s is %d bytes, want at most %d", what, len(s), maxBytes)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{
		"", "0", "7", " 120 ", "007", "86401", "99999999999999999999999", "-1", "+5", "1.5", "5s",
		"Wed, 21 Oct 2015 07:28:30 GMT", "Wednesday, 21-Oct-15 07:29:00 GMT", "Wed Oct 21 07:28:05 2015",
		"Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
	} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ripio.ParseRetryAfter(v, now)
		if !ok && d != 0 {
			t.Errorf("ParseRetryAfter(%q) = %v, false, want 0 when not ok", v, d)
		}
		if d < 0 || d > ripio.LongestRetryAfter {
			t.Errorf("ParseRetryAfter(%q) = %v, want between 0 and %v", v, d, ripio.LongestRetryAfter)
		}
		trimmed := strings.TrimSpace(v)
		if trimmed != "" && strings.Trim(trimmed, "0123456789") == "" {
			if !ok || d%time.Second != 0 {
				t.Errorf("ParseRetryAfter(%q) = %v, %v, want whole seconds, true for delay-seconds", v, d, ok)
			}
		}
		if d2, ok2 := ripio.ParseRetryAfter(" "+v+"\t", now); d2 != d || ok2 != ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v, but with spaces around = %v, %v", v, d, ok, d2, ok2)
		}
	})
}

func FuzzParseAPIError(f *testing.F) {
	seeds := []struct {
		status     int
		retryAfter string
		body       string
	}{
		{400, "", `{"code": 20000, "type": "ValidationError", "detail": {"message": "customerId already exists", "customerId": ["customer with this customerId already exists."]}, "status": 400}`},
		{400, "", `{"code": 20000, "type": "ValidationError", "detail": {"email": ["Enter a valid email address."], "type": ["\"X\" is not a valid choice."]}, "status": 400}`},
		{401, "", `{"code": 40001, "type": "NotAuthenticated", "detail": {"message": "Authentication credentials were not provided.", "code": "not_authenticated"}, "status": 401}`},
		{429, "7", `{"code": 42900, "type": "Throttled", "detail": "Request was throttled.", "status": 429}`},
		{429, "Wed, 21 Oct 2015 07:28:30 GMT", `{"detail": ["a", ["b", 1], {"c": "d"}]}`},
		{409, "", `{"code": "409", "type": null, "detail": {"message": 5}}`},
		{500, "", "<html>\r\n<body>\n\t502 Bad\u202eGateway\x1b[31m</body></html>"},
		{503, "-1", "\xff\xfe not UTF-8 \xc3"},
		{400, "", `{"detail": {"message": "bad fuzz-SECRET-9q\nsecond line"}}`},
		{400, "", `{"type": "fuzz-SECRET-9q", "code": 1e3}`},
		{502, "", strings.Repeat("é", 300)},
		{0, "", ""},
	}
	for _, s := range seeds {
		f.Add(s.status, s.retryAfter, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		e := ripio.ParseAPIError(status, retryAfter, body, fuzzSecret)
		if e.Status != status {
			t.Errorf("ParseAPIError(%d, %q, %q).Status = %d, want %d", status, retryAfter, body, e.Status, status)
		}
		if e.RetryAfter < 0 || e.RetryAfter > ripio.LongestRetryAfter {
			t.Errorf("ParseAPIError(%d, %q, %q).RetryAfter = %v, want between 0 and %v", status, retryAfter, body, e.RetryAfter, ripio.LongestRetryAfter)
		}
		checkLine(t, "Message", e.Message, maxMessageBytes)
		checkLine(t, "Type", e.Type, maxTypeBytes)
		checkLine(t, "Error()", e.Error(), 0)

		v := ripio.Classify(e)
		checkLine(t, "Classify().Reason", v.Reason, 0)
		if v.HTTPStatus != status || v.RetryAfter != e.RetryAfter || v.Code != e.Code {
			t.Errorf("Classify(%#v) = %+v, does not carry the error's status, code and wait", e, v)
		}
		want := map[int]ripio.Outcome{401: ripio.Unauthorized, 403: ripio.Unauthorized, 408: ripio.NotSent, 429: ripio.Throttled}[status]
		switch {
		case want == "" && status >= 500:
			want = ripio.InDoubt
		case want == "" && status >= 400 && status < 500 && status != 400 && status != 409:
			want = ripio.Rejected
		}
		if want != "" && v.Outcome != want {
			t.Errorf("Classify(HTTP %d).Outcome = %s, want %s", status, v.Outcome, want)
		}
		if (status == 400 || status == 409) && v.Outcome != ripio.Exists && v.Outcome != ripio.Rejected {
			t.Errorf("Classify(HTTP %d).Outcome = %s, want exists or rejected", status, v.Outcome)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		`{"accessToken": "UfpqHJaQEjV27rR6itJyhUz5x6eOxz", "expiresIn": 36000, "tokenType": "Bearer", "scope": "read write"}`,
		`{"access_token": "a", "expires_in": "2", "token_type": "bearer"}`,
		`{"accessToken": "a", "expiresIn": 1e400}`,
		`{"accessToken": "a", "expiresIn": 9.3e9}`,
		`{"accessToken": "a", "expiresIn": -5}`,
		`{"accessToken": "a", "expiresIn": 1e-300}`,
		`{"accessToken": "a", "tokenType": "MAC fuzz-SECRET-9q"}`,
		`{"expiresIn": 3600}`,
		`<html>fuzz-SECRET-9q</html>`,
		``,
	} {
		f.Add([]byte(s))
	}
	issued := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, exp, err := ripio.ParseToken(body, issued)
		if err != nil {
			var tokErr *ripio.TokenError
			if !errors.As(err, &tokErr) {
				t.Fatalf("ParseToken(%q) = %v, want a *ripio.TokenError", body, err)
			}
			checkLine(t, "TokenError.Message", tokErr.Message, 0)
			checkLine(t, "TokenError.Error()", err.Error(), 0)
			return
		}
		if tok == "" {
			t.Errorf("ParseToken(%q) = empty token, nil error", body)
		}
		// A token must never be born expired by a wrapped-around lifetime.
		if !exp.IsZero() && (exp.Before(issued) || exp.After(issued.Add(10*365*24*time.Hour))) {
			t.Errorf("ParseToken(%q) expiry = %v, want zero or within 10 years after %v", body, exp, issued)
		}
	})
}
