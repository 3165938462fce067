package ripio_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// hostileSecret has a character each encoding writes its own way: a slash
// (JSON's \/), a plus and a space (form encoding), HTML's specials and a
// non-ASCII letter (\u00e9, &#233;, %C3%A9).
const hostileSecret = `s3cr/Et+Zq9 &x<é>"Kp8`

// echoForms is a value as a server may echo it back, by encoding. It is
// written here, not taken from the client, so that both cannot share a gap.
func echoForms(id, v string) map[string]string {
	var php, allU, htmlDec, htmlHex strings.Builder
	for _, r := range v {
		switch {
		case r == '/':
			php.WriteString(`\/`)
		case r == '"' || r == '\\':
			php.WriteString(`\` + string(r))
		case r > 0x7e:
			fmt.Fprintf(&php, `\u%04x`, r)
		default:
			php.WriteRune(r)
		}
		fmt.Fprintf(&allU, `\u%04X`, r)
		fmt.Fprintf(&htmlDec, "&#%d;", r)
		fmt.Fprintf(&htmlHex, "&#x%x;", r)
	}
	lowerURL := regexpLowerPercent(url.QueryEscape(v))
	goJSON, _ := json.Marshal(v)
	return map[string]string{
		"Plain":          v,
		"JSONGo":         strings.Trim(string(goJSON), `"`),
		"JSONPHP":        php.String(),
		"JSONAllUnicode": allU.String(),
		"URLUpper":       url.QueryEscape(v),
		"URLLower":       lowerURL,
		"URLPath":        url.PathEscape(v),
		"HTMLNamed":      html.EscapeString(v),
		"HTMLDecimal":    htmlDec.String(),
		"HTMLHex":        htmlHex.String(),
		"Base64":         base64.StdEncoding.EncodeToString([]byte(v)),
		"Base64URL":      base64.RawURLEncoding.EncodeToString([]byte(v)),
		"Base64Basic":    base64.StdEncoding.EncodeToString([]byte(id + ":" + v)),
		"URLOfJSONPHP":   url.QueryEscape(php.String()),
	}
}

// regexpLowerPercent lower-cases the hex digits of every %XX.
func regexpLowerPercent(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = strings.ToLower(string(b[i+1]))[0]
			b[i+2] = strings.ToLower(string(b[i+2]))[0]
		}
	}
	return string(b)
}

// errorTexts is everything an error prints, through its chain.
func errorTexts(err error) []string {
	texts := []string{fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), ripio.Classify(err).Reason}
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error(), fmt.Sprintf("%#v", e))
	}
	return texts
}

// checkNoEcho fails t when a text holds a piece of value in any of its forms.
func checkNoEcho(t *testing.T, texts []string, id, what, value string) {
	t.Helper()
	for form, v := range echoForms(id, value) {
		for _, text := range texts {
			if part, ok := leaked(text, v); ok {
				t.Errorf("error text %q holds %q of the %s (%s)", text, part, what, form)
			}
		}
	}
}

// TestToken_HostileEndpointNeverLeaksSecret: a token endpoint that echoes
// the secret, in every encoding a server might use and in every place of its
// answer, with 401 and 503, gets none of it into an error text; the error
// still gives the status and a standard OAuth code.
func TestToken_HostileEndpointNeverLeaksSecret(t *testing.T) {
	t.Parallel()
	bodies := map[string]func(echo string) string{
		"Envelope": func(echo string) string {
			return `{"code": 40001, "type": "NotAuthenticated", "detail": {"message": "bad secret ` + echo + `"}, "status": 401}`
		},
		"OAuthDescription": func(echo string) string {
			return `{"error": "invalid_client", "error_description": "client_secret=` + echo + `"}`
		},
		"OAuthErrorField": func(echo string) string { return `{"error": "` + echo + `"}` },
		"HTML":            func(echo string) string { return "<html><body><pre>secret: " + echo + "</pre></body></html>" },
	}
	for _, status := range []int{401, 503} {
		for form, echo := range echoForms(testID, hostileSecret) {
			for shape, body := range bodies {
				t.Run(fmt.Sprintf("%d/%s/%s", status, form, shape), func(t *testing.T) {
					t.Parallel()
					f := newFakeAPI(t, answer(status, jsonHeader, body(echo)), echoCreated)
					c := newClient(t, f.URL, func(c *ripio.Config) { c.ClientSecret = hostileSecret })
					_, err := c.CreateCustomer(t.Context(), ana)
					var tokErr *ripio.TokenError
					if !errors.As(err, &tokErr) || tokErr.Status != status {
						t.Fatalf("CreateCustomer against a token endpoint answering %d = %v, want a *ripio.TokenError with that status", status, err)
					}
					checkNoEcho(t, errorTexts(err), testID, "secret", hostileSecret)
					wantCode := ""
					if shape == "OAuthDescription" && json.Valid([]byte(body(echo))) {
						wantCode = "invalid_client"
					}
					if tokErr.Code != wantCode {
						t.Errorf("TokenError.Code = %q, want %q", tokErr.Code, wantCode)
					}
					if !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", status)) {
						t.Errorf("CreateCustomer error = %q, want it to give HTTP %d", err, status)
					}
				})
			}
		}
	}
}

// TestToken_MalformedAnswerEchoingSecret: net/http quotes the bytes of an
// answer it cannot read; a server that sends the secret there does not get
// it into the error either.
func TestToken_MalformedAnswerEchoingSecret(t *testing.T) {
	t.Parallel()
	for form, echo := range echoForms(testID, hostileSecret) {
		t.Run(form, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					conn.SetDeadline(time.Now().Add(5 * time.Second))
					io.ReadAll(io.LimitReader(conn, 1)) // the request has begun
					io.WriteString(conn, "HTTP/1.1 "+echo+"\r\n\r\n")
					conn.Close()
				}
			}()
			c := newClient(t, "http://"+ln.Addr().String(), func(c *ripio.Config) { c.ClientSecret = hostileSecret })
			_, err = c.CreateCustomer(t.Context(), ana)
			if err == nil {
				t.Fatal("CreateCustomer against a malformed token answer = nil error, want one")
			}
			checkNoEcho(t, errorTexts(err), testID, "secret", hostileSecret)
		})
	}
}

// TestCreateCustomer_HostileAnswersNeverLeakCredentials: the create
// endpoint's texts are quoted, with the secret and the token redacted in
// every encoding.
func TestCreateCustomer_HostileAnswersNeverLeakCredentials(t *testing.T) {
	t.Parallel()
	const token = "AcCeSsToKeN/5f3b+9c1d"
	goodToken := answer(200, jsonHeader, `{"accessToken": "`+token+`", "expiresIn": 3600, "tokenType": "Bearer"}`)
	for what, value := range map[string]string{"secret": hostileSecret, "token": token} {
		for form, echo := range echoForms(testID, value) {
			for _, tt := range []struct {
				status int
				body   string
			}{
				{400, `{"code": 20000, "type": "ValidationError", "detail": {"message": "bad ` + echo + `"}, "status": 400}`},
				{503, "<html>upstream said " + echo + "</html>"},
				{200, "<html>" + echo + "</html>"},
			} {
				t.Run(fmt.Sprintf("%s/%s/%d", what, form, tt.status), func(t *testing.T) {
					t.Parallel()
					f := newFakeAPI(t, goodToken, answer(tt.status, nil, tt.body))
					c := newClient(t, f.URL, func(c *ripio.Config) { c.ClientSecret = hostileSecret })
					_, err := c.CreateCustomer(t.Context(), ana)
					if err == nil {
						t.Fatalf("CreateCustomer answered %d %q = nil error, want one", tt.status, tt.body)
					}
					checkNoEcho(t, errorTexts(err), testID, what, value)
				})
			}
		}
	}
}
