package ripio

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// APIError is a non-2xx answer of the API, decoded from Ripio's error
// envelope {"code","type","detail":{"message",...},"status"} where present.
type APIError struct {
	Status     int           // HTTP status
	Code       int           // envelope code, e.g. 20000; 0 when absent
	Type       string        // envelope type, e.g. "ValidationError"
	Message    string        // detail.message, or the other detail texts, or the body's start
	RetryAfter time.Duration // from the Retry-After header; 0 when absent

	token string // the access token the request carried; never printed
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ripio: HTTP %d", e.Status)
	if e.Type != "" || e.Code != 0 {
		fmt.Fprintf(&b, " %s", e.Type)
		if e.Code != 0 {
			fmt.Fprintf(&b, " (%d)", e.Code)
		}
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
func parseAPIError(resp *http.Response, body []byte) *APIError {
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
		e.Type = env.Type
		e.Message = detailMessage(env.Detail)
	}
	if e.Message == "" && e.Type == "" {
		e.Message = bodySnippet(body)
	}
	return e
}

// detailMessage turns the envelope's detail into one line: detail.message
// first, then any other field texts (validation errors list them per field),
// sorted so the same answer always reads the same.
func detailMessage(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
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

func bodySnippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP date, measured from now. ok is false for an empty or unreadable
// value; a date in the past gives 0.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
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
	// Unauthorized: the credentials or the token were refused.
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
}

// Classify decides what a CreateCustomer result means. It is the only
// function that does: the importer acts on its answer alone.
func Classify(err error) Verdict {
	if err == nil {
		return Verdict{Outcome: Created}
	}
	var (
		apiErr   *APIError
		tokErr   *TokenError
		transErr *TransportError
	)
	switch {
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
		v := Verdict{HTTPStatus: tokErr.Status, Reason: tokErr.Error()}
		if tokErr.Status >= 400 && tokErr.Status < 500 && tokErr.Status != http.StatusTooManyRequests && tokErr.Status != http.StatusRequestTimeout {
			v.Outcome = Unauthorized
		} else {
			// No answer, a 5xx or a throttle from the token endpoint: the
			// create itself was never sent.
			v.Outcome = NotSent
			v.RetryAfter = tokErr.RetryAfter
		}
		return v
	case errors.As(err, &transErr):
		v := Verdict{Outcome: NotSent, Reason: transErr.Error()}
		if transErr.Sent {
			v.Outcome = InDoubt
		}
		return v
	}
	// Anything else is a failure we did not foresee: assume the worst.
	return Verdict{Outcome: InDoubt, Reason: err.Error()}
}
