package ripio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// TokenError is a failed token fetch. Status is 0 when no answer came.
//
// The token endpoint was sent the client secret, and one that echoes it can
// do so in more encodings than a list of redactions foresees. So nothing it
// says is quoted: only its status and an OAuth error code of the standard's
// vocabulary.
type TokenError struct {
	Status     int
	Code       string // the answer's OAuth "error" code (RFC 6749, 5.2) when it is a known one, e.g. "invalid_client"
	Message    string // what was wrong with the answer, in the client's words; never the server's text
	RetryAfter time.Duration
	Err        error // the transport error, when there was no answer; its text holds no credential

	// URL is the token endpoint asked: the base URL and /oauth2/token/.
	URL string
	// WrongURL: the answer says that URL is no token endpoint (404 or 405,
	// a redirect, an HTML page, a 2xx that is not a token), so the base URL
	// is probably wrong, not the credentials. errors.Is(err,
	// ErrWrongBaseURL) reports it too.
	WrongURL bool

	byCaller bool // Err is the waiting caller's context ending, not the fetch failing
}

// ErrWrongBaseURL matches, with errors.Is, a *TokenError whose answer says
// the base URL is probably wrong: it must be the API's root, such as
// https://skala-sandbox.ripio.com, without /api/v1.
var ErrWrongBaseURL = errors.New("ripio: the base URL is probably wrong")

func (e *TokenError) Is(target error) bool { return target == ErrWrongBaseURL && e.WrongURL }

func (e *TokenError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("ripio: token: no answer%s: %v", e.from(), e.Err)
	}
	msg := "HTTP " + fmt.Sprint(e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	msg += e.from()
	switch {
	case e.WrongURL:
		msg += ": RIPIO_BASE_URL is probably wrong; it is the API's root, such as https://skala-sandbox.ripio.com"
		if strings.Contains(e.URL, "/api/") {
			msg += ", without /api/v1"
		}
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Status == http.StatusBadRequest:
		msg += " (check RIPIO_CLIENT_ID and the client secret for this target)"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return "ripio: token: " + msg
}

func (e *TokenError) from() string {
	if e.URL == "" {
		return ""
	}
	return " from " + e.URL
}

func (e *TokenError) Unwrap() error { return e.Err }

// oauthCodes are the error codes a token endpoint may answer: RFC 6749's,
// RFC 6750's and RFC 8628's. Only these are quoted, so that a code cannot
// carry the secret.
var oauthCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true,
	"unauthorized_client": true, "unsupported_grant_type": true, "invalid_scope": true,
	"access_denied": true, "server_error": true, "temporarily_unavailable": true,
	"invalid_token": true, "insufficient_scope": true, "slow_down": true,
}

// tokenRefusal is the error of a non-2xx token answer.
func tokenRefusal(resp *http.Response, body []byte) *TokenError {
	e := &TokenError{Status: resp.StatusCode}
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound, s == http.StatusMethodNotAllowed, s >= 300 && s < 400:
		e.WrongURL = true
	case s >= 400 && s < 500 && s != http.StatusUnauthorized && s != http.StatusForbidden &&
		s != http.StatusRequestTimeout && s != http.StatusTooManyRequests:
		// A web site's error page, where the API would answer JSON.
		e.WrongURL = isHTML(resp, body)
	}
	if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = d
	}
	var ans struct {
		Error any `json:"error"`
	}
	if json.Unmarshal(body, &ans) == nil {
		if code, ok := ans.Error.(string); ok && oauthCodes[code] {
			e.Code = code
		}
	}
	return e
}

// isHTML reports whether an answer is a web page.
func isHTML(resp *http.Response, body []byte) bool {
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil &&
		(mt == "text/html" || mt == "application/xhtml+xml") {
		return true
	}
	start := strings.ToLower(string(bytes.TrimSpace(body[:min(len(body), 64)])))
	return strings.HasPrefix(start, "<!doctype html") || strings.HasPrefix(start, "<html")
}

// tokenFetcher gets a token from POST /oauth2/token/. Ripio answers in
// camelCase, which x/oauth2's own clientcredentials package does not read,
// hence this small fetcher.
type tokenFetcher struct {
	url, id, secret, userAgent string
	http                       *http.Client
	timeout                    time.Duration
	hide                       []string // the secret, kept out of error texts
}

// Token fetches a new token. It has its own timeout and ignores the
// callers' contexts: the workers waiting for it share its result.
func (f *tokenFetcher) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &TokenError{URL: f.url, Err: err}
	}
	req.SetBasicAuth(f.id, f.secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", f.userAgent)
	issued := time.Now()
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, &TokenError{URL: f.url, Err: scrubError(err, f.hide)}
	}
	defer resp.Body.Close()
	body, err := readAnswer(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The status is the answer; a body cut short only loses the code.
		e := tokenRefusal(resp, body)
		e.URL = f.url
		return nil, e
	}
	switch {
	case errors.Is(err, errAnswerTooLong):
		// A token is a few hundred bytes; this is a page of some web site.
		return nil, &TokenError{URL: f.url, Status: resp.StatusCode, Message: "the answer is " + err.Error() + ", not a token", WrongURL: true}
	case err != nil:
		return nil, &TokenError{URL: f.url, Err: scrubError(err, f.hide)}
	}
	tok, err := parseToken(body, issued)
	if e, ok := err.(*TokenError); ok {
		e.URL = f.url
		e.Status = resp.StatusCode
		e.WrongURL = e.WrongURL || isHTML(resp, body)
	}
	return tok, err
}

// maxTokenLife caps expiresIn, so that an absurd value cannot overflow a
// time.Duration into a token that is always expired.
const maxTokenLife = 10 * 365 * 24 * time.Hour

// parseToken reads the token answer in Ripio's camelCase or the older
// snake_case spelling. Its errors quote nothing of the answer.
func parseToken(body []byte, issued time.Time) (*oauth2.Token, error) {
	var ans struct {
		AccessToken      string      `json:"accessToken"`
		AccessTokenSnake string      `json:"access_token"`
		ExpiresIn        json.Number `json:"expiresIn"`
		ExpiresInSnake   json.Number `json:"expires_in"`
		TokenType        string      `json:"tokenType"`
		TokenTypeSnake   string      `json:"token_type"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, &TokenError{Status: http.StatusOK, Message: "the answer is not a JSON token", WrongURL: true}
	}
	tok := &oauth2.Token{AccessToken: firstNonEmpty(ans.AccessToken, ans.AccessTokenSnake), TokenType: "Bearer"}
	if tok.AccessToken == "" {
		return nil, &TokenError{Status: http.StatusOK, Message: "the answer has no accessToken", WrongURL: true}
	}
	if t := firstNonEmpty(ans.TokenType, ans.TokenTypeSnake); t != "" && !strings.EqualFold(t, "bearer") {
		return nil, &TokenError{Status: http.StatusOK, Message: "the token type is not Bearer"}
	}
	secs, err := json.Number(firstNonEmpty(string(ans.ExpiresIn), string(ans.ExpiresInSnake))).Float64()
	if errors.Is(err, strconv.ErrRange) && secs > 0 {
		err = nil // +Inf: capped below
	}
	if err == nil && secs > 0 {
		ttl := maxTokenLife
		if secs < maxTokenLife.Seconds() {
			ttl = time.Duration(secs * float64(time.Second))
		}
		tok.Expiry = issued.Add(ttl - refreshMargin(ttl))
	}
	// No or unreadable expiresIn: a zero Expiry never expires by the clock;
	// a 401 still makes the client fetch a new one.
	return tok, nil
}

// refreshMargin is how long before expiry a token is replaced: a tenth of
// its life, at most a minute, so that a call never leaves with a token that
// dies in flight, and a 2-second token is not refetched on every call.
func refreshMargin(ttl time.Duration) time.Duration {
	return min(ttl/10, time.Minute)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// tokenCache is the one token shared by all workers. Fetches go through a
// singleflight group: workers that need a token while one is being fetched
// wait for that fetch and share its result, error included, so many workers
// needing a token at once make one request, and a token endpoint that fails
// or hangs is asked once per wave of workers, not once per worker in turn.
// (oauth2.ReuseTokenSource holds a lock during its fetch and shares no
// error: a failing endpoint would be asked by each waiting worker in turn.)
type tokenCache struct {
	fetch  func() (*oauth2.Token, error)
	flight singleflight.Group

	mu  sync.Mutex
	tok *oauth2.Token // nil before the first fetch and after invalidate
}

func newTokenCache(fetch func() (*oauth2.Token, error)) *tokenCache {
	return &tokenCache{fetch: fetch}
}

func (c *tokenCache) cached() *oauth2.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && fresh(c.tok, time.Now()) {
		return c.tok
	}
	return nil
}

// token returns the cached token while it is fresh, or else the result of
// the fetch under way, starting one if there is none. ctx bounds only this
// caller's wait; the fetch runs to its own timeout for the others.
func (c *tokenCache) token(ctx context.Context) (*oauth2.Token, error) {
	if tok := c.cached(); tok != nil {
		return tok, nil
	}
	ch := c.flight.DoChan("token", func() (any, error) {
		if tok := c.cached(); tok != nil { // a fetch ended just before this one began
			return tok, nil
		}
		tok, err := c.fetch()
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.tok = tok
		c.mu.Unlock()
		return tok, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*oauth2.Token), nil
	case <-ctx.Done():
		return nil, &TokenError{Err: ctx.Err(), byCaller: true}
	}
}

// fresh reports whether tok may still be sent. The refresh margin is already
// taken off Expiry by parseToken; oauth2.Token.Valid would take off another
// 10 s and refetch short-lived tokens on every call.
func fresh(tok *oauth2.Token, now time.Time) bool {
	return tok.Expiry.IsZero() || now.Before(tok.Expiry)
}

// invalidate forgets the cached token if it is still the refused one, so
// that many workers refused at once cause one new fetch, not one each. The
// token is compared by identity: a server may issue the same text again.
func (c *tokenCache) invalidate(refused *oauth2.Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok == refused {
		c.tok = nil
	}
}
