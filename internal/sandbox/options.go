package sandbox

import (
	"fmt"
	"math"
	"time"
)

// Options configures a Server. The zero value is a working fake with no rate
// limit and no faults; DefaultOptions adds what a zero value cannot say.
type Options struct {
	// Addr is the listen address. Default "127.0.0.1:0".
	Addr string
	// ClientID and ClientSecret are the only credentials the token endpoint
	// accepts. Defaults "sandbox-client" and "sandbox-secret".
	ClientID, ClientSecret string
	// TokenTTL is the lifetime of issued tokens; the answer's expiresIn is
	// its whole seconds rounded up. Default 1h. Expired and unknown tokens
	// get 401.
	TokenTTL time.Duration
	// TokenSnakeCase answers the token in snake_case (access_token,
	// expires_in, token_type) instead of camelCase.
	TokenSnakeCase bool

	// RateLimit is the number of create requests per second the server
	// accepts (a token bucket); the rest get 429. 0 means unlimited.
	RateLimit float64
	// RateBurst is the bucket size. Default max(1, int(RateLimit/10)).
	RateBurst int
	// RetryAfter adds a Retry-After header in whole seconds to 429 answers:
	// the wait the bucket needs, rounded up, at least 1. DefaultOptions sets
	// it.
	RetryAfter bool

	// Latency, plus a uniform random part in [0, LatencyJitter), delays
	// every create request that passed the rate limit.
	Latency, LatencyJitter time.Duration

	// FailBeforeCommit is the fraction of valid creates that answer 503
	// without storing the customer.
	FailBeforeCommit float64
	// FailAfterCommit is the fraction of stored creates that answer 500.
	FailAfterCommit float64
	// DropAfterCommit is the fraction of stored creates whose connection is
	// closed without an answer.
	DropAfterCommit float64
	// HangAfterCommit is the fraction of stored creates that never answer:
	// the handler waits until the client goes away or the server closes.
	// FailAfterCommit+DropAfterCommit+HangAfterCommit must be at most 1.
	HangAfterCommit float64

	// UniqueEmail also refuses a customer whose email, ignoring case, an
	// existing customer has: 400 "email already exists".
	UniqueEmail bool
	// RejectEmails refuses every create whose email, ignoring case, is one
	// of these: 400 ValidationError on the email, nothing stored, as the
	// API refuses an address it finds invalid.
	RejectEmails []string

	// DBPath, when set, keeps customers in this SQLite file, created with
	// mode 0600 if missing, so that a later server can reopen them.
	// Customers are kept in memory otherwise.
	DBPath string

	// Seed seeds the random source of faults and jitter; 0 picks a random
	// seed. With one client sending one request at a time, a seed fixes
	// which requests fail.
	Seed int64
	// Now is the clock for token expiry, the rate limit and createdAt.
	// Default time.Now.
	Now func() time.Time
	// Logf, if set, receives one line per request and the HTTP server's
	// errors. It never receives credentials, tokens or request bodies.
	Logf func(format string, args ...any)

	// Misbehaviours: answers the real API should never give, from it or from
	// what stands in front of it, to rehearse what the client makes of them.
	// All are off in the zero value; misbehave.go plays them. A create
	// endpoint that fails every time is FailBeforeCommit: 1.

	// CreateHTML200 answers every authorised create 200 with a text/html
	// maintenance page, as a proxy in front of the API does; nothing is
	// stored.
	CreateHTML200 bool
	// AssignIDs stores each customer under an id of the server's own,
	// ignoring the one sent, and answers that id, as the Create Customer of
	// Ripio's public pages does. Sending a person twice makes two customers
	// unless UniqueEmail is set.
	AssignIDs bool
	// OtherEmail answers each stored create with another person's email.
	OtherEmail bool
	// TokenEcho, when set, makes the token endpoint refuse every request
	// with TokenEchoStatus and an answer that echoes the client secret, in
	// one of the EchoEncodings: a hostile or careless server.
	TokenEcho string
	// TokenEchoStatus is the status of TokenEcho's answers. Default 401.
	TokenEchoStatus int
	// TokenNotFound answers the token endpoint 404 with an HTML page, as a
	// web server does at a path it does not have: the client was given a
	// wrong base URL.
	TokenNotFound bool
	// ThrottleAll, when positive, answers every authorised create 429 with
	// this Retry-After, in whole seconds rounded up: a server that never
	// lets up.
	ThrottleAll time.Duration
	// Rate limit shapes beyond the token bucket, to play any server.
	//
	// RateWindow, when set, makes the limit a fixed window instead: at
	// most RateLimit×RateWindow creates in each window of this length,
	// aligned to the clock; Retry-After is the time left in the window.
	// RateSchedule changes RateLimit during the run, each step at its
	// After counted from the first create request (with a bucket, a step
	// starts a full bucket of RateBurst at the new rate), such as
	// 100/s, then 50/s after 10s, then 100/s after 20s.
	RateWindow   time.Duration
	RateSchedule []RateStep
}

// DefaultOptions returns the options the sandbox command and the embedded
// default target start from: every default filled in, and Retry-After on.
func DefaultOptions() Options {
	o := Options{RetryAfter: true}
	return o.withDefaults()
}

func (o Options) withDefaults() Options {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.ClientID == "" {
		o.ClientID = "sandbox-client"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "sandbox-secret"
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = time.Hour
	}
	if o.RateBurst == 0 {
		o.RateBurst = defaultBurst(o.RateLimit)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func defaultBurst(perSecond float64) int {
	return max(1, int(perSecond/10))
}

func (o Options) validate() error {
	if err := o.validateMisbehaviour(); err != nil {
		return err
	}
	if o.TokenTTL < 0 {
		return fmt.Errorf("sandbox: TokenTTL %v is negative", o.TokenTTL)
	}
	if o.RateLimit < 0 || math.IsNaN(o.RateLimit) || math.IsInf(o.RateLimit, 0) {
		return fmt.Errorf("sandbox: RateLimit %v must be a finite number >= 0", o.RateLimit)
	}
	if o.RateBurst < 0 {
		return fmt.Errorf("sandbox: RateBurst %d is negative", o.RateBurst)
	}
	if o.Latency < 0 {
		return fmt.Errorf("sandbox: Latency %v is negative", o.Latency)
	}
	if o.LatencyJitter < 0 {
		return fmt.Errorf("sandbox: LatencyJitter %v is negative", o.LatencyJitter)
	}
	if err := o.validateShape(); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"FailBeforeCommit", o.FailBeforeCommit},
		{"FailAfterCommit", o.FailAfterCommit},
		{"DropAfterCommit", o.DropAfterCommit},
		{"HangAfterCommit", o.HangAfterCommit},
	} {
		if !(f.v >= 0 && f.v <= 1) {
			return fmt.Errorf("sandbox: %s %v must be between 0 and 1", f.name, f.v)
		}
	}
	if sum := o.FailAfterCommit + o.DropAfterCommit + o.HangAfterCommit; sum > 1+1e-9 {
		return fmt.Errorf("sandbox: FailAfterCommit+DropAfterCommit+HangAfterCommit %v must be at most 1", sum)
	}
	return nil
}
