// Package ripio is a client for the part of the Ripio Ramp API that bulkcreate
// needs: the OAuth2 client-credentials token and Create Customer.
//
// Every result of a call is sorted into an [Outcome] by [Classify], the one
// place that decides what the importer does next. A [Client] is safe for
// concurrent use; all workers share its token.
//
// Answers are checked before they are believed. A 2xx is a created customer
// only when its body is the create answer for the customer sent; anything
// else (a proxy's page, another person's answer) is an [*AnswerError], in
// doubt. An answer for the email sent under another customerId is created,
// but by a target that assigns its own ids: [Customer.AssignedID] and
// [Client.AssignsIDs] say so, because such a target does not refuse a
// re-sent row. A token endpoint that is not one matches [ErrWrongBaseURL];
// an API that cannot be reached is reported by [Unreachable]. Every answer
// is read to at most 64 KiB.
//
// The client secret and access tokens never appear in an error text, in any
// encoding a server may echo them in: nothing a token endpoint says is
// quoted beyond its status and OAuth error code, and other server texts are
// redacted, or withheld whole when they still hold a piece of a credential
// after decoding. Retry-After waits reach the caller whole (up to
// [LongestRetryAfter]); deciding that a wait is too long is the caller's.
package ripio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

const defaultUserAgent = "bulkcreate/dev"

// CustomerType is the kind of customer Ripio knows.
type CustomerType string

// The customer types of the API.
const (
	Individual CustomerType = "INDIVIDUAL"
	Business   CustomerType = "BUSINESS"
)

// Config configures a Client. Zero fields take the defaults documented on them.
type Config struct {
	// BaseURL is the API root, e.g. https://skala-sandbox.ripio.com. Plain
	// http is refused unless the host is a loopback address.
	BaseURL      string
	ClientID     string
	ClientSecret string

	// HTTPClient sends the requests. Default: a client with TLS verification
	// and keep-alive pooling sized for a worker pool. The client uses a copy
	// that does not follow redirects.
	HTTPClient *http.Client

	// WrapTransport, if set, wraps HTTPClient's transport (http.DefaultTransport
	// when it has none), so that a caller can observe every request without
	// giving up the default client's tuning.
	WrapTransport func(http.RoundTripper) http.RoundTripper

	// Timeout bounds one request, token fetches included. Default 30s.
	Timeout time.Duration

	// UserAgent is sent on every request. Default "bulkcreate/dev".
	UserAgent string
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = defaultUserAgent
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 256
		c.HTTPClient = &http.Client{Transport: t}
	}
	return c
}

func (c Config) validate() (*url.URL, error) {
	if c.BaseURL == "" {
		return nil, errors.New("ripio: config: BaseURL is empty")
	}
	u, err := url.Parse(strings.TrimRight(c.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("ripio: config: BaseURL: %w", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("ripio: config: BaseURL %s: plain http is allowed only for loopback hosts; use https", u.Redacted())
		}
	default:
		return nil, fmt.Errorf("ripio: config: BaseURL %q: scheme must be https", c.BaseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("ripio: config: BaseURL %q has no host", c.BaseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("ripio: config: BaseURL %s must not carry user info, a query or a fragment", u.Redacted())
	}
	if c.ClientID == "" {
		return nil, errors.New("ripio: config: ClientID is empty")
	}
	if c.ClientSecret == "" {
		return nil, errors.New("ripio: config: ClientSecret is empty")
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Client talks to one Ripio target. It is safe for concurrent use.
type Client struct {
	base      string // without trailing slash
	http      *http.Client
	timeout   time.Duration
	userAgent string
	tokens    *tokenCache
	hide      []string // the secret and the Basic credentials; the token is added per call

	assignsIDs atomic.Bool // an answer carried an id the server assigned
}

// New returns a client for cfg. It makes no request: the first token is
// fetched by the first call that needs it.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	// A redirected POST is re-sent as a GET (301, 302, 303) or to another
	// place (307, 308): a 2xx from there would read as "created" for a
	// customer that was never made. The 3xx itself is the answer.
	hc := *cfg.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.WrapTransport != nil {
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		hc.Transport = cfg.WrapTransport(rt)
	}
	c := &Client{
		base:      u.String(),
		http:      &hc,
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		hide:      []string{cfg.ClientSecret, basicCredentials(cfg.ClientID, cfg.ClientSecret)},
	}
	fetcher := &tokenFetcher{
		url:       c.base + "/oauth2/token/",
		id:        cfg.ClientID,
		secret:    cfg.ClientSecret,
		http:      &hc,
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		hide:      c.hide,
	}
	c.tokens = newTokenCache(fetcher.Token)
	return c, nil
}

// AssignsIDs reports whether an answer of this client's target has shown
// that it assigns its own customer ids (see [Customer.AssignedID]). It never
// turns false again: a target that numbered one customer itself will not be
// trusted to refuse a re-sent one.
func (c *Client) AssignsIDs() bool { return c.assignsIDs.Load() }

// BaseURL is the API root the client talks to, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// CreateCustomerRequest is the body of Create Customer.
type CreateCustomerRequest struct {
	CustomerID string       `json:"customerId"`
	Email      string       `json:"email"`
	Type       CustomerType `json:"type"`

	// Leave, when set, is called once the request is built, just before
	// it goes to the transport, and the request leaves when it returns:
	// a pacer's last wait, so that paced requests reach the server as
	// evenly as they were paced. Its wait does not count against
	// Config.Timeout. An error sends nothing.
	Leave func(context.Context) error `json:"-"`
}

// Customer is the server's answer to a create.
type Customer struct {
	// CustomerID is the server's id for the customer: the one sent, or the
	// server's own when AssignedID is set.
	CustomerID string       `json:"customerId"`
	Email      string       `json:"email"`
	Type       CustomerType `json:"type"`
	IsActive   bool         `json:"isActive"`
	CreatedAt  time.Time    `json:"createdAt"`

	// AssignedID is set when the answer was for the email sent but carried
	// a customerId other than the one sent: the target assigns its own ids
	// and ignores the partner's, and this is the id it gave the new
	// customer. The customer was created (Classify(nil) is Created), but
	// such a target does not refuse a second create of the same person, so
	// a row whose outcome is unknown must not be re-sent to it
	// automatically. [Client.AssignsIDs] remembers it for the client's
	// target. Empty when the server kept the id sent or did not say.
	AssignedID string `json:"-"`
	// IDKept is set when the answer carried the customerId sent: the
	// server keeps the partner's ids, so it would refuse a second create
	// of this person. An answer that names no id says nothing either way.
	IDKept bool `json:"-"`
}

// CreateCustomer creates one customer. A 2xx is a success only when its body
// is the create answer: a JSON object whose customerId and email, those of
// them it carries, are the ones sent (emails compared trimmed and ignoring
// case). The returned Customer is what the answer says, completed with what
// was sent. Failures are *APIError, *AnswerError (a 2xx that is not the create
// answer), *TokenError or *TransportError; pass them to [Classify].
//
// A 401/403 answer drops the shared token and the call is made once more
// with a fresh one: a server that refuses the fresh token too is a
// credentials problem, reported as the second *APIError.
func (c *Client) CreateCustomer(ctx context.Context, req CreateCustomerRequest) (Customer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Customer{}, fmt.Errorf("ripio: create customer: encode: %w", err)
	}
	for attempt := 0; ; attempt++ {
		cust, err := c.createOnce(ctx, req, body)
		req.Leave = nil // a retry with a fresh token goes at once
		var apiErr *APIError
		if attempt == 0 && errors.As(err, &apiErr) && apiErr.authFailure() {
			c.tokens.invalidate(apiErr.tok)
			continue
		}
		return cust, err
	}
}

func (c *Client) createOnce(ctx context.Context, req CreateCustomerRequest, body []byte) (Customer, error) {
	tok, err := c.tokens.token(ctx)
	if err != nil {
		return Customer{}, err
	}
	caller := ctx
	hreq, err := http.NewRequestWithContext(caller, http.MethodPost, c.base+"/api/v1/customers/", bytes.NewReader(body))
	if err != nil {
		return Customer{}, fmt.Errorf("ripio: create customer: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.userAgent)
	tok.SetAuthHeader(hreq)

	hide := append(c.hide[:len(c.hide):len(c.hide)], tok.AccessToken)
	if req.Leave != nil {
		if err := req.Leave(caller); err != nil {
			return Customer{}, &TransportError{Op: "create customer", Err: err, byCaller: caller.Err() != nil}
		}
	}
	// The timeout starts as the request leaves, after Leave's wait.
	// WroteHeaders runs on the transport's goroutine, which may outlive Do
	// when the context ends, hence the atomic.
	ctx, cancel := context.WithTimeout(caller, c.timeout)
	defer cancel()
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}
	hreq = hreq.WithContext(httptrace.WithClientTrace(ctx, trace))
	resp, err := c.http.Do(hreq)
	if err != nil {
		return Customer{}, &TransportError{Op: "create customer", Sent: wrote.Load(), Err: scrubError(err, hide), byCaller: caller.Err() != nil}
	}
	defer resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	data, err := readAnswer(resp.Body)
	if errors.Is(err, errAnswerTooLong) && !ok {
		err = nil // the status is the answer, and the start says enough
	}
	if err != nil && !ok {
		// The server answered, so it saw the request; only the answer is
		// lost.
		return Customer{}, &TransportError{Op: "create customer: read answer", Sent: true, Err: scrubError(err, hide), byCaller: caller.Err() != nil}
	}
	if !ok {
		e := parseAPIError(resp, data, hide...)
		e.tok = tok
		return Customer{}, e
	}
	switch {
	case errors.Is(err, errAnswerTooLong):
		return Customer{}, newAnswerError(resp, "the answer is "+err.Error(), data, hide)
	case err != nil:
		// A 2xx whose body broke off cannot be checked.
		return Customer{}, newAnswerError(resp, "the answer broke off: "+cleanText(scrubURLError(err).Error(), maxSnippet, hide), nil, nil)
	}
	cust, err := checkCreated(req, resp, data, hide)
	if cust.AssignedID != "" {
		c.assignsIDs.Store(true)
	}
	return cust, err
}

// TransportError is a call that got no HTTP answer. Sent reports whether the
// request's headers were written to the connection: when true the server may
// have acted on it.
type TransportError struct {
	Op   string
	Sent bool
	Err  error

	byCaller bool // the caller's context ended the call
}

func (e *TransportError) Error() string {
	state := "not sent"
	if e.Sent {
		state = "sent, no answer"
	}
	return fmt.Sprintf("ripio: %s: %s: %v", e.Op, state, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }
