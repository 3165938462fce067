package ripio_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// createAnswered makes one create against a fake whose token endpoint works
// and whose create endpoint always gives this answer.
func createAnswered(status int, header map[string]string, body string) func(*testing.T) error {
	return func(t *testing.T) error {
		f := newFakeAPI(t, nil, answer(status, header, body))
		_, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
		return err
	}
}

// tokenAnswered makes one create against a fake whose token endpoint always
// gives this answer; its create endpoint must not be reached.
func tokenAnswered(status int, header map[string]string, body string) func(*testing.T) error {
	return func(t *testing.T) error {
		f := newFakeAPI(t, answer(status, header, body), func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("create reached after a token answer %d", status)
		})
		_, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
		return err
	}
}

// rawCreate makes one create against rawAPI(onCreate), with the client's
// Timeout set to timeout.
func rawCreate(timeout time.Duration, onCreate func(net.Conn)) func(*testing.T) error {
	return func(t *testing.T) error {
		_, err := newClient(t, rawAPI(t, onCreate), withTimeout(timeout)).CreateCustomer(t.Context(), ana)
		return err
	}
}

// rawAPI serves a Ripio spoken by hand on a raw TCP listener, for the
// answers net/http's server will not give. A token request gets a
// hand-written HTTP/1.1 answer with "Connection: close", so that the create
// comes on a connection of its own; that connection, its request read, is
// handed to onCreate, which must close it. Cleanup closes the listener and
// every connection still open and waits for the goroutines.
func rawAPI(t *testing.T, onCreate func(net.Conn)) (baseURL string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]bool{}
		closed bool
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				conn.Close()
				continue
			}
			conns[conn] = true
			mu.Unlock()
			wg.Go(func() {
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					conn.Close()
					return
				}
				io.Copy(io.Discard, req.Body)
				if req.URL.Path != "/oauth2/token/" {
					onCreate(conn)
					return
				}
				body := `{"accessToken": "tok-raw", "expiresIn": 3600, "tokenType": "Bearer"}`
				fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
				conn.Close()
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func envelope(status, code int, typ, detail string) string {
	return fmt.Sprintf(`{"code": %d, "type": %q, "detail": %s, "status": %d}`, code, typ, detail, status)
}

// TestClassify sorts the result of real CreateCustomer calls, against fakes
// that answer every status class and fail in every way a transport can.
func TestClassify(t *testing.T) {
	t.Parallel()
	notAuthenticated := `{"message": "Authentication credentials were not provided.", "code": "not_authenticated"}`
	tests := []struct {
		name string
		call func(*testing.T) error
		want ripio.Verdict // Reason is only checked to be one non-empty line
		// waitMin, when set, makes want.RetryAfter an upper bound.
		waitMin time.Duration
	}{
		// 2xx
		{name: "201", call: createAnswered(201, jsonHeader, created201), want: ripio.Verdict{Outcome: ripio.Created}},
		{name: "200", call: createAnswered(200, jsonHeader, created201), want: ripio.Verdict{Outcome: ripio.Created}},
		// A 2xx that cannot be checked may come from anything on the way.
		{name: "204", call: createAnswered(204, nil, ""), want: ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 204}},
		{name: "201BodyCutOff", call: rawCreate(5*time.Second, func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n{\"customerId\": \"c-0")
			c.Close()
		}), want: ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 201}},
		{name: "200HTML", call: createAnswered(200, map[string]string{"Content-Type": "text/html"}, "<html>Maintenance</html>"),
			want: ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 200}},

		// Already there.
		{
			name: "400CustomerIDExists",
			call: createAnswered(400, jsonHeader, envelope(400, 20000, "ValidationError",
				`{"message": "customerId already exists", "customerId": ["customer with this customerId already exists."]}`)),
			want: ripio.Verdict{Outcome: ripio.Exists, HTTPStatus: 400, Code: 20000},
		},
		{
			name: "400EmailExists",
			call: createAnswered(400, jsonHeader, envelope(400, 20000, "ValidationError", `{"message": "email already exists"}`)),
			want: ripio.Verdict{Outcome: ripio.Exists, HTTPStatus: 400, Code: 20000},
		},
		{
			name: "400CustomerWithEmailExistsFieldOnly",
			call: createAnswered(400, jsonHeader, envelope(400, 20000, "ValidationError", `{"email": ["Customer with this email already exists."]}`)),
			want: ripio.Verdict{Outcome: ripio.Exists, HTTPStatus: 400, Code: 20000},
		},
		{
			name: "400DetailString",
			call: createAnswered(400, jsonHeader, envelope(400, 20000, "ValidationError", `"Customer with this email already exists."`)),
			want: ripio.Verdict{Outcome: ripio.Exists, HTTPStatus: 400, Code: 20000},
		},
		{
			name: "400DetailList",
			call: createAnswered(400, jsonHeader, envelope(400, 20000, "ValidationError", `["Customer with this email already exists."]`)),
			want: ripio.Verdict{Outcome: ripio.Exists, HTTPStatus: 400, Code: 20000},
		},
		{
			name: "409",
			call: createAnswered(409, jsonHeader, envelope(409, 40900, "Conflict", `{"message": "Customer already exists."}`)),
			want: ripio.Verdict{Outcome: ripio.Exists, HTTPStatus: 409, Code: 40900},
		},
		{
			name: "400PlainTextExists",
			call: createAnswered(400, map[string]string{"Content-Type": "text/plain"}, "customer already exists\n"),
			want: ripio.Verdict{Outcome: ripio.Exists, HTTPStatus: 400},
		},

		// Refused for good.
		{
			name: "400Validation",
			call: createAnswered(400, jsonHeader, envelope(400, 20000, "ValidationError",
				`{"message": "email: Enter a valid email address.", "email": ["Enter a valid email address."]}`)),
			want: ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 400, Code: 20000},
		},
		{
			name: "400ParseError",
			call: createAnswered(400, jsonHeader, envelope(400, 20001, "ParseError", `{"message": "JSON parse error - Expecting value"}`)),
			want: ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 400, Code: 20001},
		},
		{
			name: "409WithoutExists",
			call: createAnswered(409, jsonHeader, envelope(409, 40900, "Conflict", `{"message": "Edit conflict."}`)),
			want: ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 409, Code: 40900},
		},
		{
			name: "404",
			call: createAnswered(404, jsonHeader, envelope(404, 40400, "NotFound", `{"message": "Not found.", "code": "not_found"}`)),
			want: ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 404, Code: 40400},
		},
		{
			name: "422",
			call: createAnswered(422, jsonHeader, envelope(422, 42200, "Unprocessable", `{"message": "type: not a valid choice"}`)),
			want: ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 422, Code: 42200},
		},
		{
			name: "400NotJSON",
			call: createAnswered(400, map[string]string{"Content-Type": "text/html"}, "<html><body><h1>Bad Request</h1></body></html>"),
			want: ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 400},
		},
		{
			name: "400HugePage",
			call: createAnswered(400, map[string]string{"Content-Type": "text/html"}, "<html>"+strings.Repeat("x", 200<<10)+"</html>"),
			want: ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 400},
		},
		{
			name: "400EmptyBody",
			call: createAnswered(400, nil, ""),
			want: ripio.Verdict{Outcome: ripio.Rejected, HTTPStatus: 400},
		},

		// The server read nothing to act on.
		{
			name: "408",
			call: createAnswered(408, map[string]string{"Connection": "close"}, envelope(408, 40800, "RequestTimeout", `{"message": "Request timeout."}`)),
			want: ripio.Verdict{Outcome: ripio.NotSent, HTTPStatus: 408, Code: 40800},
		},

		// Slow down.
		{
			name: "429RetryAfterSeconds",
			call: createAnswered(429, map[string]string{"Retry-After": "7", "Content-Type": "application/json"},
				envelope(429, 42900, "Throttled", `{"message": "Request was throttled.", "code": "throttled"}`)),
			want: ripio.Verdict{Outcome: ripio.Throttled, HTTPStatus: 429, Code: 42900, RetryAfter: 7 * time.Second},
		},
		{
			name: "429RetryAfterDate",
			call: func(t *testing.T) error {
				f := newFakeAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
					// Dated when answered: subtests may start long after the table is built.
					w.Header().Set("Retry-After", time.Now().Add(30*time.Second).UTC().Format(http.TimeFormat))
					answer(429, nil, envelope(429, 42900, "Throttled", `{"message": "Request was throttled."}`))(w, r)
				})
				_, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
				return err
			},
			want: ripio.Verdict{Outcome: ripio.Throttled, HTTPStatus: 429, Code: 42900, RetryAfter: 30 * time.Second}, waitMin: 25 * time.Second,
		},
		{
			name: "429HugeBody",
			call: createAnswered(429, map[string]string{"Retry-After": "3"}, strings.Repeat("slow down ", 20<<10)),
			want: ripio.Verdict{Outcome: ripio.Throttled, HTTPStatus: 429, RetryAfter: 3 * time.Second},
		},
		{
			name: "429NoRetryAfterNotJSON",
			call: createAnswered(429, nil, "Too Many Requests"),
			want: ripio.Verdict{Outcome: ripio.Throttled, HTTPStatus: 429},
		},

		// Credentials: the client refreshes the token once, then reports.
		{
			name: "401",
			call: createAnswered(401, jsonHeader, envelope(401, 40001, "NotAuthenticated", notAuthenticated)),
			want: ripio.Verdict{Outcome: ripio.Unauthorized, HTTPStatus: 401, Code: 40001},
		},
		{
			name: "403",
			call: createAnswered(403, jsonHeader, envelope(403, 40001, "NotAuthenticated", notAuthenticated)),
			want: ripio.Verdict{Outcome: ripio.Unauthorized, HTTPStatus: 403, Code: 40001},
		},
		{
			name: "401NotJSON",
			call: createAnswered(401, nil, "Unauthorized"),
			want: ripio.Verdict{Outcome: ripio.Unauthorized, HTTPStatus: 401},
		},

		// The server may have acted.
		{
			name: "500",
			call: createAnswered(500, jsonHeader, envelope(500, 50000, "ServerError", `{"message": "A server error occurred."}`)),
			want: ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 500, Code: 50000},
		},
		{
			name: "502NotJSON",
			call: createAnswered(502, map[string]string{"Content-Type": "text/html"}, "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body>\r\n</html>\r\n"),
			want: ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 502},
		},
		{
			name: "503RetryAfter",
			call: createAnswered(503, map[string]string{"Retry-After": "5"}, envelope(503, 50300, "ServiceUnavailable", `{"message": "Service temporarily unavailable, try again later."}`)),
			want: ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 503, Code: 50300, RetryAfter: 5 * time.Second},
		},
		{
			name: "504NotJSON",
			call: createAnswered(504, nil, "upstream request timeout"),
			want: ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 504},
		},
		{
			name: "302",
			call: func(t *testing.T) error {
				f := newFakeAPI(t, nil, func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "/api/v1/customers/", http.StatusFound)
				})
				_, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
				return err
			},
			want: ripio.Verdict{Outcome: ripio.InDoubt, HTTPStatus: 302},
		},

		// Transport failures of the create.
		{
			name: "DialRefused",
			call: func(t *testing.T) error {
				// The first create fetches the token and succeeds on a
				// connection the answer closes; then the port closes.
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Connection", "close")
					if r.URL.Path == "/oauth2/token/" {
						answer(200, jsonHeader, `{"accessToken": "t", "expiresIn": 3600}`)(w, r)
						return
					}
					echoCreated(w, r)
				}))
				c := newClient(t, srv.URL)
				if _, err := c.CreateCustomer(t.Context(), ana); err != nil {
					t.Fatalf("CreateCustomer(%+v) before the port closed = %v", ana, err)
				}
				srv.Close()
				_, err := c.CreateCustomer(t.Context(), ana)
				return err
			},
			want: ripio.Verdict{Outcome: ripio.NotSent, Unreachable: true},
		},
		{
			name: "ClosedWithoutAnswer",
			call: rawCreate(5*time.Second, func(c net.Conn) { c.Close() }),
			want: ripio.Verdict{Outcome: ripio.InDoubt},
		},
		{
			name: "Reset",
			call: rawCreate(5*time.Second, func(c net.Conn) {
				c.(*net.TCPConn).SetLinger(0) // close with RST
				c.Close()
			}),
			want: ripio.Verdict{Outcome: ripio.InDoubt},
		},
		{
			name: "NoAnswerWithinTimeout",
			call: rawCreate(300*time.Millisecond, func(c net.Conn) {
				io.Copy(io.Discard, c) // until the client gives up and closes
				c.Close()
			}),
			want: ripio.Verdict{Outcome: ripio.InDoubt, Unreachable: true},
		},
		{
			name: "ContextCancelledInFlight",
			call: func(t *testing.T) error {
				base := rawAPI(t, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
				ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
				defer cancel()
				_, err := newClient(t, base).CreateCustomer(ctx, ana)
				return err
			},
			want: ripio.Verdict{Outcome: ripio.InDoubt},
		},

		// The token endpoint: the create is never sent.
		{
			name: "Token401",
			call: tokenAnswered(401, jsonHeader, envelope(401, 40001, "NotAuthenticated", `{"message": "Invalid client credentials."}`)),
			want: ripio.Verdict{Outcome: ripio.Unauthorized, HTTPStatus: 401},
		},
		{
			name: "Token400OAuthError",
			call: tokenAnswered(400, jsonHeader, `{"error": "invalid_client"}`),
			want: ripio.Verdict{Outcome: ripio.Unauthorized, HTTPStatus: 400},
		},
		{
			name: "Token403NotJSON",
			call: tokenAnswered(403, nil, "Forbidden"),
			want: ripio.Verdict{Outcome: ripio.Unauthorized, HTTPStatus: 403},
		},
		{
			name: "Token500",
			call: tokenAnswered(500, jsonHeader, envelope(500, 50000, "ServerError", `{"message": "A server error occurred."}`)),
			want: ripio.Verdict{Outcome: ripio.NotSent, HTTPStatus: 500},
		},
		{
			name: "Token503RetryAfterNotJSON",
			call: tokenAnswered(503, map[string]string{"Retry-After": "4"}, "<html>maintenance</html>"),
			want: ripio.Verdict{Outcome: ripio.NotSent, HTTPStatus: 503, RetryAfter: 4 * time.Second},
		},
		{
			name: "Token429",
			call: tokenAnswered(429, map[string]string{"Retry-After": "2"}, ""),
			want: ripio.Verdict{Outcome: ripio.TokenThrottled, HTTPStatus: 429, RetryAfter: 2 * time.Second},
		},
		{
			name: "Token200WithoutToken",
			call: tokenAnswered(200, jsonHeader, `{"expiresIn": 3600}`),
			want: ripio.Verdict{Outcome: ripio.Unauthorized, HTTPStatus: 200, WrongURL: true},
		},
		{
			name: "TokenUnreachable",
			call: func(t *testing.T) error {
				_, err := newClient(t, closedPort(t)).CreateCustomer(t.Context(), ana)
				return err
			},
			want: ripio.Verdict{Outcome: ripio.NotSent, Unreachable: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call(t)
			got := ripio.Classify(err)
			gotCmp, wantCmp := got, tt.want
			gotCmp.Reason = ""
			if tt.waitMin > 0 && got.RetryAfter >= tt.waitMin && got.RetryAfter <= tt.want.RetryAfter {
				gotCmp.RetryAfter = tt.want.RetryAfter
			}
			if gotCmp != wantCmp {
				t.Errorf("Classify(%v) = %+v, want %+v", err, got, tt.want)
			}
			if err != nil && (got.Reason == "" || strings.ContainsAny(got.Reason, "\r\n")) {
				t.Errorf("Classify(%v).Reason = %q, want one non-empty line", err, got.Reason)
			}
		})
	}
}

func TestClassify_NilAndForeignErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want ripio.Outcome
	}{
		{nil, ripio.Created},
		{io.ErrUnexpectedEOF, ripio.InDoubt},
		{fmt.Errorf("wrapped: %w", &ripio.APIError{Status: 429, RetryAfter: time.Second}), ripio.Throttled},
		{fmt.Errorf("wrapped: %w", &ripio.TransportError{Op: "create customer", Err: io.EOF}), ripio.NotSent},
		{&ripio.TransportError{Op: "create customer", Sent: true, Err: io.EOF}, ripio.InDoubt},
		{&ripio.TokenError{Status: 408}, ripio.NotSent},
		{&ripio.APIError{Status: 100}, ripio.InDoubt},
	}
	for _, tt := range tests {
		if got := ripio.Classify(tt.err).Outcome; got != tt.want {
			t.Errorf("Classify(%v).Outcome = %s, want %s", tt.err, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"   ", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"007", 7 * time.Second, true},
		{"86400", 24 * time.Hour, true},
		{"86401", 24*time.Hour + time.Second, true},
		{"31536000", 365 * 24 * time.Hour, true},                   // a year is not cut short
		{"3153600000", ripio.LongestRetryAfter, true},              // a century
		{"9223372036", ripio.LongestRetryAfter, true},              // overflows a Duration
		{"99999999999999999999999", ripio.LongestRetryAfter, true}, // overflows int64: still a long wait
		{"-1", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"soon", 0, false},
		{"Wed, 21 Oct 2015 07:28:30 GMT", 30 * time.Second, true},     // RFC 1123
		{"Wednesday, 21-Oct-15 07:29:00 GMT", time.Minute, true},      // RFC 850
		{"Wed Oct 21 07:28:05 2015", 5 * time.Second, true},           // ANSI C asctime
		{"Wed, 21 Oct 2015 07:27:00 GMT", 0, true},                    // past
		{"Fri, 21 Oct 2016 07:28:00 GMT", 366 * 24 * time.Hour, true}, // a (leap) year later
		{"Fri, 31 Dec 9999 23:59:59 GMT", ripio.LongestRetryAfter, true},
		{"Wed, 21 Oct 2015 07:28:30 +0000", 0, false}, // not an HTTP date
		{"Wed, 32 Oct 2015 07:28:30 GMT", 0, false},
	}
	for _, tt := range tests {
		got, ok := ripio.ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v, want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// TestClassify_RetryAfterOfAYear: the server's wait reaches the caller
// whole, so that the caller can stop on a cap of its own instead of waiting.
func TestClassify_RetryAfterOfAYear(t *testing.T) {
	t.Parallel()
	const year = 365 * 24 * time.Hour
	for name, call := range map[string]func(*testing.T) error{
		"Create429": createAnswered(429, map[string]string{"Retry-After": "31536000"}, ""),
		"Create503": createAnswered(503, map[string]string{"Retry-After": "31536000"}, ""),
		"Token429":  tokenAnswered(429, map[string]string{"Retry-After": "31536000"}, ""),
		"Token503":  tokenAnswered(503, map[string]string{"Retry-After": "31536000"}, ""),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := call(t)
			if v := ripio.Classify(err); v.RetryAfter != year {
				t.Errorf("Classify(%v).RetryAfter = %v, want %v", err, v.RetryAfter, year)
			}
		})
	}
}
