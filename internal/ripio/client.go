// Package ripio is a client for the part of the Ripio Ramp API that bulkcreate
// needs: the OAuth2 client-credentials token and Create Customer.
//
// Every result of a call is sorted into an [Outcome] by [Classify], the one
// place that decides what the importer does next. A [Client] is safe for
// concurrent use; all workers share its token.
//
// The client secret and access tokens never appear in an error text.
package ripio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	hide      []string // the secret's forms; the token is added per call
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
		hide:      secretForms(cfg.ClientID, cfg.ClientSecret),
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

// BaseURL is the API root the client talks to, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// CreateCustomerRequest is the body of Create Customer.
type CreateCustomerRequest struct {
	CustomerID string       `json:"customerId"`
	Email      string       `json:"email"`
	Type       CustomerType `json:"type"`
}

// Customer is the server's answer to a create.
type Customer struct {
	CustomerID string       `json:"customerId"`
	Email      string       `json:"email"`
	Type       CustomerType `json:"type"`
	IsActive   bool         `json:"isActive"`
	CreatedAt  time.Time    `json:"createdAt"`
}

// CreateCustomer creates one customer. Any 2xx is a success; the returned
// CustomerID is the server's (the one sent when the answer has none).
// Failures are *APIError, *TokenError or *TransportError; pass them to
// [Classify].
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
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	// WroteHeaders runs on the transport's goroutine, which may outlive Do
	// when the context ends, hence the atomic.
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}
	hreq, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, c.base+"/api/v1/customers/", bytes.NewReader(body))
	if err != nil {
		return Customer{}, fmt.Errorf("ripio: create customer: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.userAgent)
	tok.SetAuthHeader(hreq)

	resp, err := c.http.Do(hreq)
	if err != nil {
		return Customer{}, &TransportError{Op: "create customer", Sent: wrote.Load(), Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && !ok {
		// The server answered, so it saw the request; only the answer is
		// lost. (A 2xx whose body breaks off still created the customer.)
		return Customer{}, &TransportError{Op: "create customer: read answer", Sent: true, Err: scrubURLError(err)}
	}
	if !ok {
		e := parseAPIError(resp, data, append(c.hide[:len(c.hide):len(c.hide)], tok.AccessToken)...)
		e.tok = tok
		return Customer{}, e
	}
	var cust Customer
	if len(bytes.TrimSpace(data)) > 0 {
		// A 2xx with an unreadable or cut body still created the customer: keep
		// what can be read and fall back to what was sent.
		_ = json.Unmarshal(data, &cust)
	}
	if cust.CustomerID == "" {
		cust.CustomerID = req.CustomerID
	}
	if cust.Email == "" {
		cust.Email = req.Email
	}
	if cust.Type == "" {
		cust.Type = req.Type
	}
	return cust, nil
}

// scrubURLError drops the *url.Error wrapper, whose text repeats the URL;
// the URL holds no secret, but the operation is already named by our wrapper.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// TransportError is a call that got no HTTP answer. Sent reports whether the
// request's headers were written to the connection: when true the server may
// have acted on it.
type TransportError struct {
	Op   string
	Sent bool
	Err  error
}

func (e *TransportError) Error() string {
	state := "not sent"
	if e.Sent {
		state = "sent, no answer"
	}
	return fmt.Sprintf("ripio: %s: %s: %v", e.Op, state, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }
