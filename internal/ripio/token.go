package ripio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// TokenError is a failed token fetch. Status is 0 when no answer came.
type TokenError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
	Err        error // the transport error, when there was no answer
}

func (e *TokenError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("ripio: token: no answer: %v", e.Err)
	}
	msg := "HTTP " + fmt.Sprint(e.Status)
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Status == http.StatusBadRequest {
		msg += " (check RIPIO_CLIENT_ID and the client secret for this target)"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return "ripio: token: " + msg
}

func (e *TokenError) Unwrap() error { return e.Err }

// tokenFetcher gets a token from POST /oauth2/token/. Ripio answers in
// camelCase, which x/oauth2's own clientcredentials package does not read,
// hence this small fetcher under oauth2's caching.
type tokenFetcher struct {
	url, id, secret, userAgent string
	http                       *http.Client
	timeout                    time.Duration
}

// Token implements oauth2.TokenSource.
func (f *tokenFetcher) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &TokenError{Err: err}
	}
	req.SetBasicAuth(f.id, f.secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", f.userAgent)
	issued := time.Now()
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, &TokenError{Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &TokenError{Err: scrubURLError(err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := parseAPIError(resp, body)
		return nil, &TokenError{Status: resp.StatusCode, Message: e.Message, RetryAfter: e.RetryAfter}
	}
	return parseToken(body, issued)
}

// parseToken reads the token answer in Ripio's camelCase or the older
// snake_case spelling.
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
		return nil, &TokenError{Status: http.StatusOK, Message: "answer is not JSON: " + bodySnippet([]byte(scrubBody(body)))}
	}
	tok := &oauth2.Token{AccessToken: firstNonEmpty(ans.AccessToken, ans.AccessTokenSnake), TokenType: "Bearer"}
	if tok.AccessToken == "" {
		return nil, &TokenError{Status: http.StatusOK, Message: "answer has no accessToken"}
	}
	if t := firstNonEmpty(ans.TokenType, ans.TokenTypeSnake); t != "" && !strings.EqualFold(t, "bearer") {
		return nil, &TokenError{Status: http.StatusOK, Message: fmt.Sprintf("token type %q is not Bearer", t)}
	}
	secs, err := json.Number(firstNonEmpty(string(ans.ExpiresIn), string(ans.ExpiresInSnake))).Float64()
	if err == nil && secs > 0 {
		ttl := time.Duration(secs * float64(time.Second))
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

// scrubBody keeps a body's text out of an error when it might hold a token.
func scrubBody(body []byte) string {
	if strings.Contains(strings.ToLower(string(body)), "token") {
		return "(body withheld)"
	}
	return string(body)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// tokenCache is the one token shared by all workers. oauth2's reuse source
// serializes fetches behind a mutex, so many workers needing a token at the
// same moment make one fetch. invalidate drops a token the server refused.
type tokenCache struct {
	fetch oauth2.TokenSource

	mu  sync.Mutex
	src oauth2.TokenSource
}

func newTokenCache(fetch oauth2.TokenSource) *tokenCache {
	return &tokenCache{fetch: fetch, src: newReuse(fetch)}
}

func newReuse(fetch oauth2.TokenSource) oauth2.TokenSource {
	// The margin is already taken off Expiry by parseToken; oauth2's own
	// default of 10s early would refetch short-lived tokens on every call.
	return oauth2.ReuseTokenSourceWithExpiry(nil, fetch, time.Nanosecond)
}

func (c *tokenCache) token() (*oauth2.Token, error) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	return src.Token()
}

// invalidate forgets the cached token if it is still the refused one, so
// that many workers refused at once cause one new fetch, not one each.
func (c *tokenCache) invalidate(refused string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, err := c.src.Token(); err == nil && cur.AccessToken != refused {
		return
	}
	c.src = newReuse(c.fetch)
}
