package ripio

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// APIError is a non-2xx answer of the API, decoded from Ripio's error
// envelope {"code","type","detail":{"message",...},"status"} where present.
type APIError struct {
	Status     int           // HTTP status
	Code       int           // envelope code, e.g. 20000; 0 when absent
	Type       string        // envelope type, e.g. "ValidationError"
	Message    string        // detail.message, or the other detail texts, or the body's start
	RetryAfter time.Duration // from the Retry-After header; 0 when absent

	// tok is the token the request carried, kept by identity so that the
	// client can drop exactly that one; a pointer, so that even %#v prints
	// no token text.
	tok *oauth2.Token
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ripio: HTTP %d", e.Status)
	if e.Type != "" {
		fmt.Fprintf(&b, " %s", e.Type)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, " (%d)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

func (e *APIError) authFailure() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// alreadyExists reports whether the answer says the customer is already
// there: a 400 (or 409) whose text says the customer, customerId or email
// "already exists".
func (e *APIError) alreadyExists() bool {
	if e.Status != http.StatusBadRequest && e.Status != http.StatusConflict {
		return false
	}
	return strings.Contains(strings.ToLower(e.Message), "already exist")
}

// parseAPIError decodes an error answer. It never fails: an answer that is
// not the envelope keeps its status and the start of its body as message.
// Every text taken from the answer is made one bounded line with the hide
// values (the secret, the token) redacted: servers echo what they were sent.
func parseAPIError(resp *http.Response, body []byte, hide ...string) *APIError {
	e := &APIError{Status: resp.StatusCode}
	if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = d
	}
	var env struct {
		Code   json.Number     `json:"code"`
		Type   string          `json:"type"`
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(body, &env); err == nil {
		if n, err := env.Code.Int64(); err == nil {
			e.Code = int(n)
		}
		e.Type = cleanText(env.Type, maxType, hide)
		e.Message = cleanText(detailMessage(env.Detail), maxMessage, hide)
	}
	if e.Message == "" && e.Type == "" {
		e.Message = bodySnippet(body, hide)
	}
	return e
}

// detailMessage turns the envelope's detail into text: detail.message
// first, then any other field texts (validation errors list them per field),
// sorted so the same answer always reads the same. parseAPIError makes it
// one line.
func detailMessage(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	m, ok := v.(map[string]any)
	if !ok {
		// A bare string, or a list of them as some frameworks answer.
		return flattenText(v)
	}
	var parts []string
	if msg, ok := m["message"].(string); ok && msg != "" {
		parts = append(parts, msg)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "message" && k != "code" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if t := flattenText(m[k]); t != "" {
			parts = append(parts, k+": "+t)
		}
	}
	return strings.Join(parts, "; ")
}

func flattenText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		var parts []string
		for _, x := range v {
			if t := flattenText(x); t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, ", ")
	}
	return ""
}

// Limits, in bytes, of the server texts an error carries: enough for a
// validation message that names several fields, short enough for a log line.
const (
	maxMessage = 500
	maxSnippet = 200
	maxType    = 100
)

// bodySnippet is the start of a body that is not the error envelope.
func bodySnippet(body []byte, hide []string) string {
	return cleanText(string(body), maxSnippet, hide)
}

// cleanText makes server text safe to print on one line: valid UTF-8, no
// control or format characters, white space collapsed, every hide value
// redacted (and the whole text withheld when it still holds one in another
// encoding), and at most limit bytes (plus an ellipsis), cut on a rune
// boundary. Redaction comes after collapsing, so that white space cannot
// disguise a secret, and before cutting, so that a cut cannot leave part of
// one.
func cleanText(s string, limit int, hide []string) string {
	s = oneLine(s)
	// Only the start can be printed; a credential that an encoding makes up
	// to 12 times longer still fits in the slack, so the checks below see
	// every part of the text that is printed.
	if slack := limit + 12*maxLen(hide) + 64; len(s) > slack {
		s = cutRunes(s, slack)
	}
	s = redact(s, hide)
	if echoes(s, hide) {
		return withheld
	}
	if len(s) <= limit {
		return s
	}
	return strings.TrimRight(cutRunes(s, limit), " ") + "…"
}

// cutRunes returns the longest prefix of s of at most n bytes that ends on a
// rune boundary.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func maxLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s))
	}
	return n
}

func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r):
			return ' '
		case unicode.Is(unicode.Cf, r):
			// Bidi overrides and zero-width characters: they can make a
			// line read differently from what it holds.
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// LongestRetryAfter is the longest wait ParseRetryAfter returns: a longer
// one, up to values that overflow a Duration, reads as this, so that adding
// it to a time cannot overflow. Anything near it means "not before the run
// is long over": a caller compares waits with its own cap.
const LongestRetryAfter = 100 * 365 * 24 * time.Hour

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP date, measured from now. ok is false for an empty or unreadable
// value; a date in the past gives 0. The wait is the server's, however long
// (a year is a year), up to LongestRetryAfter: it is for the caller to
// decide that a wait is too long and stop.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		// delay-seconds is 1*DIGIT: too many digits for an int64 is still
		// a (very long) wait, not an unreadable value.
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(LongestRetryAfter/time.Second) {
			return LongestRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if t.After(now.Add(LongestRetryAfter)) {
		return LongestRetryAfter, true
	}
	return max(t.Sub(now), 0), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Outcome is what a create call means for the row that made it.
type Outcome string

// The outcome classes. Only [Classify] assigns them.
const (
	// Created: the server made the customer.
	Created Outcome = "created"
	// Exists: the server already had the customer; as good as created.
	Exists Outcome = "exists"
	// Rejected: the server refused the row itself; sending it again will not help.
	Rejected Outcome = "rejected"
	// Throttled: the server asked us to slow down; nothing was done.
	Throttled Outcome = "throttled"
	// TokenThrottled: the token endpoint asked us to wait (429); the create
	// was never sent. Creates are not what is limited: wait, do not slow.
	TokenThrottled Outcome = "token_throttled"
	// Unauthorized: the credentials or the token were refused, or the token
	// endpoint is not where the base URL says (Verdict.WrongURL).
	Unauthorized Outcome = "unauthorized"
	// NotSent: the request never reached the server; safe to send again.
	NotSent Outcome = "not_sent"
	// InDoubt: the server may have acted on the request, but we do not know.
	InDoubt Outcome = "in_doubt"
)

// Verdict is the classification of one call's result.
type Verdict struct {
	Outcome    Outcome
	HTTPStatus int           // 0 when there was no answer
	Code       int           // the envelope code, when there was one
	RetryAfter time.Duration // the server's requested wait, when it gave one
	Reason     string        // one line for the ledger and the operator; no secrets

	// WrongURL: the token endpoint's answer says the base URL is probably
	// wrong (see [ErrWrongBaseURL]); Outcome is Unauthorized, as nothing can
	// be sent until the configuration changes.
	WrongURL bool
	// Unreachable: no answer came because the API could not be reached
	// (see [Unreachable]). Outcome stays NotSent, or InDoubt when the request
	// was sent before it timed out.
	Unreachable bool
}

// Classify decides what a CreateCustomer result means. It is the only
// function that does: the importer acts on its answer alone.
func Classify(err error) Verdict {
	if err == nil {
		return Verdict{Outcome: Created}
	}
	var (
		apiErr   *APIError
		ansErr   *AnswerError
		tokErr   *TokenError
		transErr *TransportError
	)
	switch {
	case errors.As(err, &ansErr):
		return Verdict{Outcome: InDoubt, HTTPStatus: ansErr.Status, Reason: ansErr.Error()}
	case errors.As(err, &apiErr):
		v := Verdict{HTTPStatus: apiErr.Status, Code: apiErr.Code, RetryAfter: apiErr.RetryAfter, Reason: apiErr.Error()}
		switch s := apiErr.Status; {
		case s == http.StatusTooManyRequests:
			v.Outcome = Throttled
		case apiErr.authFailure():
			v.Outcome = Unauthorized
		case apiErr.alreadyExists():
			v.Outcome = Exists
		case s == http.StatusRequestTimeout:
			// The server gave up reading the request before acting on it.
			v.Outcome = NotSent
		case s >= 400 && s < 500:
			v.Outcome = Rejected
		default:
			// 5xx, and 1xx/3xx that should never come: the server may have
			// committed before failing.
			v.Outcome = InDoubt
		}
		return v
	case errors.As(err, &tokErr):
		v := Verdict{HTTPStatus: tokErr.Status, Reason: tokErr.Error(), WrongURL: tokErr.WrongURL, Unreachable: Unreachable(err)}
		switch s := tokErr.Status; {
		case tokErr.WrongURL:
			// Whatever the status: no token will come from there.
			v.Outcome = Unauthorized
		case s == http.StatusTooManyRequests:
			v.Outcome = TokenThrottled
			v.RetryAfter = tokErr.RetryAfter
		case s >= 400 && s < 500 && s != http.StatusRequestTimeout:
			v.Outcome = Unauthorized
		default:
			// No answer or a 5xx from the token endpoint: the create itself
			// was never sent.
			v.Outcome = NotSent
			v.RetryAfter = tokErr.RetryAfter
		}
		return v
	case errors.As(err, &transErr):
		v := Verdict{Outcome: NotSent, Reason: transErr.Error(), Unreachable: Unreachable(err)}
		if transErr.Sent {
			v.Outcome = InDoubt
		}
		return v
	}
	// Anything else is a failure we did not foresee: assume the worst.
	return Verdict{Outcome: InDoubt, Reason: err.Error()}
}

// Unreachable reports whether err is a call that got no answer because the
// API could not be reached: the host name did not resolve, the connection
// was refused or the network or host was unreachable, the TLS handshake
// failed, or the call timed out (connecting, or waiting for an answer that
// never came). It is false for any answer, for a connection the server
// closed or reset, and for a call whose caller's context ended.
func Unreachable(err error) bool {
	var (
		tokErr   *TokenError
		transErr *TransportError
		cause    error
	)
	switch {
	case errors.As(err, &tokErr):
		if tokErr.Status != 0 || tokErr.byCaller {
			return false
		}
		cause = tokErr.Err
	case errors.As(err, &transErr):
		if transErr.byCaller {
			return false
		}
		cause = transErr.Err
	default:
		return false
	}
	return unreachableCause(cause)
}

// unreachableCause reports whether the transport error cause says the API
// could not be reached.
func unreachableCause(cause error) bool {
	if cause == nil || errors.Is(cause, context.Canceled) {
		return false
	}
	var scrubbed *scrubbedError
	if errors.As(cause, &scrubbed) {
		return scrubbed.unreachable
	}
	var (
		dnsErr    *net.DNSError
		netErr    net.Error
		certErr   *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
		authErr   x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	switch {
	case errors.As(cause, &dnsErr),
		errors.Is(cause, syscall.ECONNREFUSED),
		errors.Is(cause, syscall.EHOSTUNREACH),
		errors.Is(cause, syscall.ENETUNREACH),
		errors.Is(cause, syscall.EHOSTDOWN),
		errors.As(cause, &certErr),
		errors.As(cause, &recordErr),
		errors.Is(cause, http.ErrSchemeMismatch),
		errors.As(cause, &alertErr),
		errors.As(cause, &authErr),
		errors.As(cause, &hostErr),
		errors.As(cause, &invalid),
		errors.Is(cause, context.DeadlineExceeded),
		errors.As(cause, &netErr) && netErr.Timeout():
		return true
	}
	return false
}
