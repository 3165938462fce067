package ripio_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestToken_WrongBaseURL: a token endpoint that answers as no token endpoint
// does means the base URL is wrong, not the credentials; the error says so
// and can be told apart.
func TestToken_WrongBaseURL(t *testing.T) {
	t.Parallel()
	htmlHeader := map[string]string{"Content-Type": "text/html; charset=utf-8"}
	tests := []struct {
		name  string
		token http.HandlerFunc
		wrong bool
	}{
		{"404HTML", answer(404, htmlHeader, "<html><body><h1>Not Found</h1></body></html>"), true},
		{"404JSON", answer(404, jsonHeader, `{"detail": "Not found."}`), true},
		{"405", answer(405, map[string]string{"Allow": "GET"}, ""), true},
		{"301", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/login/", http.StatusMovedPermanently)
		}, true},
		{"400HTMLPage", answer(400, nil, "<!DOCTYPE html><html><title>Bad Request</title></html>"), true},
		{"200HTML", answer(200, htmlHeader, "<!doctype html><html><title>Ripio</title></html>"), true},
		{"200JSONNotAToken", answer(200, jsonHeader, `{"status": "ok"}`), true},
		{"200NotJSON", answer(200, nil, "OK"), true},
		{"200Huge", answer(200, jsonHeader, `{"accessToken": "a", "pad": "`+strings.Repeat("x", 100<<10)+`"}`), true},

		{"401JSON", answer(401, jsonHeader, `{"error": "invalid_client"}`), false},
		{"401HTML", answer(401, htmlHeader, "<html>Unauthorized</html>"), false},
		{"400OAuth", answer(400, jsonHeader, `{"error": "invalid_grant"}`), false},
		{"503HTML", answer(503, htmlHeader, "<html>Maintenance</html>"), false},
		{"429", answer(429, map[string]string{"Retry-After": "1"}, ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t, tt.token, echoCreated)
			_, err := newClient(t, f.URL).CreateCustomer(t.Context(), ana)
			if got := errors.Is(err, ripio.ErrWrongBaseURL); got != tt.wrong {
				t.Fatalf("errors.Is(%v, ErrWrongBaseURL) = %v, want %v", err, got, tt.wrong)
			}
			v := ripio.Classify(err)
			if v.WrongURL != tt.wrong {
				t.Errorf("Classify(%v).WrongURL = %v, want %v", err, v.WrongURL, tt.wrong)
			}
			if !tt.wrong {
				return
			}
			if v.Outcome != ripio.Unauthorized {
				t.Errorf("Classify(%v).Outcome = %s, want unauthorized: nothing can be sent", err, v.Outcome)
			}
			if !strings.Contains(err.Error(), "RIPIO_BASE_URL is probably wrong") || strings.Contains(err.Error(), "RIPIO_CLIENT_ID") {
				t.Errorf("CreateCustomer error = %q, want it to blame RIPIO_BASE_URL, not the credentials", err)
			}
			if !strings.Contains(err.Error(), f.URL+"/oauth2/token/") {
				t.Errorf("CreateCustomer error = %q, want it to name the URL asked", err)
			}
		})
	}

	// The mistake the README warns about: the base URL with /api/v1.
	t.Run("APIPathInBaseURL", func(t *testing.T) {
		t.Parallel()
		srv, err := sandbox.NewServer(sandbox.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		c := newClient(t, srv.URL()+"/api/v1", func(c *ripio.Config) {
			c.ClientID, c.ClientSecret = srv.ClientID(), srv.ClientSecret()
		})
		_, err = c.CreateCustomer(t.Context(), ana)
		if !errors.Is(err, ripio.ErrWrongBaseURL) || !strings.Contains(err.Error(), "without /api/v1") {
			t.Errorf("CreateCustomer with base URL .../api/v1 = %v, want ErrWrongBaseURL saying to drop /api/v1", err)
		}
	})
}

// TestUnreachable: what ripio.Unreachable says of calls that got no answer,
// and of calls that did.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	// dnsFailure resolves no name, as a resolver that does not know the host.
	dnsFailure := func(c *ripio.Config) {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "api.example", IsNotFound: true}}
			},
		}}
	}
	silent := func(t *testing.T) string { // accepts and never answers
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(io.Discard, c); c.Close() }()
			}
		}()
		return "http://" + ln.Addr().String()
	}
	tests := []struct {
		name string
		call func(t *testing.T) error
		want bool
	}{
		{"TokenConnectionRefused", func(t *testing.T) error {
			_, err := newClient(t, closedPort(t)).CreateCustomer(t.Context(), ana)
			return err
		}, true},
		{"TokenDNSFailure", func(t *testing.T) error {
			_, err := newClient(t, "https://api.example", dnsFailure).CreateCustomer(t.Context(), ana)
			return err
		}, true},
		{"TokenTLSUnknownAuthority", func(t *testing.T) error {
			srv := httptest.NewTLSServer(http.NotFoundHandler())
			t.Cleanup(srv.Close)
			_, err := newClient(t, srv.URL).CreateCustomer(t.Context(), ana)
			return err
		}, true},
		{"TokenTLSToPlainHTTP", func(t *testing.T) error {
			srv := httptest.NewServer(http.NotFoundHandler())
			t.Cleanup(srv.Close)
			_, err := newClient(t, strings.Replace(srv.URL, "http:", "https:", 1)).CreateCustomer(t.Context(), ana)
			return err
		}, true},
		{"TokenTimeout", func(t *testing.T) error {
			_, err := newClient(t, silent(t), withTimeout(200*time.Millisecond)).CreateCustomer(t.Context(), ana)
			return err
		}, true},
		{"CreateTimeout", rawCreate(200*time.Millisecond, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() }), true},
		{"CreateConnectionRefused", func(t *testing.T) error {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				answer(200, jsonHeader, `{"accessToken": "t", "expiresIn": 3600}`)(w, r)
			}))
			c := newClient(t, srv.URL)
			c.CreateCustomer(t.Context(), ana) // fetches the token
			srv.Close()
			_, err := c.CreateCustomer(t.Context(), ana)
			return err
		}, true},

		{"CallerCancelled", func(t *testing.T) error {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			_, err := newClient(t, silent(t)).CreateCustomer(ctx, ana)
			return err
		}, false},
		{"ClosedWithoutAnswer", rawCreate(5*time.Second, func(c net.Conn) { c.Close() }), false},
		{"Answer503", createAnswered(503, nil, "busy"), false},
		{"Token401", tokenAnswered(401, nil, ""), false},
		{"Created", createAnswered(201, jsonHeader, created201), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call(t)
			if got := ripio.Unreachable(err); got != tt.want {
				t.Errorf("Unreachable(%v) = %v, want %v", err, got, tt.want)
			}
			if got := ripio.Classify(err).Unreachable; got != tt.want {
				t.Errorf("Classify(%v).Unreachable = %v, want %v", err, got, tt.want)
			}
		})
	}
	if ripio.Unreachable(errors.New("foreign")) {
		t.Errorf("Unreachable(a foreign error) = true, want false")
	}
}
