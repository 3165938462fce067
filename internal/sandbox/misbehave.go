package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The misbehaviours of Options, played here so that the well-behaved
// server's code stays as the spec says.

// EchoEncodings returns the encodings Options.TokenEcho can echo the secret
// in: as is, JSON-escaped as Go writes it and as PHP does (`\/`, `\u00e9`),
// every character as \uXXXX, percent-encoded in upper and lower case, as HTML
// character references, and as base64 of the secret and of the Basic
// credentials.
func EchoEncodings() []string {
	return []string{"plain", "json", "json-php", "json-unicode", "url", "url-lower", "html", "base64", "basic"}
}

func (o Options) validateMisbehaviour() error {
	if o.TokenEcho != "" && !slices.Contains(EchoEncodings(), o.TokenEcho) {
		return fmt.Errorf("sandbox: TokenEcho %q is not one of %s", o.TokenEcho, strings.Join(EchoEncodings(), ", "))
	}
	if o.TokenEchoStatus != 0 && (o.TokenEchoStatus < 300 || o.TokenEchoStatus > 599) {
		return fmt.Errorf("sandbox: TokenEchoStatus %d must be an error status, 300 to 599", o.TokenEchoStatus)
	}
	if o.TokenEcho != "" && o.TokenNotFound {
		return fmt.Errorf("sandbox: TokenEcho and TokenNotFound cannot both be set")
	}
	if o.ThrottleAll < 0 {
		return fmt.Errorf("sandbox: ThrottleAll %v is negative", o.ThrottleAll)
	}
	return nil
}

// misbehave answers r if a misbehaviour decides its answer, and reports
// whether it did.
func (s *Server) misbehave(w *recorder, r *http.Request) bool {
	o := &s.opts
	switch {
	case r.URL.Path == tokenPath && o.TokenNotFound:
		s.stats.tokenRequests.Add(1)
		writeHTML(w, http.StatusNotFound, "404 Not Found", "The requested URL was not found on this server.")
		return true
	case r.URL.Path == tokenPath && o.TokenEcho != "":
		s.stats.tokenRequests.Add(1)
		s.echoSecret(w)
		return true
	case r.URL.Path != customersPath || r.Method != http.MethodPost || !s.authorized(r):
		return false
	case o.ThrottleAll > 0:
		s.stats.requests.Add(1)
		s.stats.throttled.Add(1)
		secs := int64(math.Ceil(o.ThrottleAll.Seconds() - 1e-9))
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, secs), 10))
		writeError(w, http.StatusTooManyRequests, 42900, "Throttled",
			detail{"message": "Request was throttled.", "code": "throttled"})
		return true
	case o.CreateHTML200:
		s.stats.requests.Add(1)
		writeHTML(w, http.StatusOK, "Down for maintenance", "We'll be back shortly.")
		return true
	}
	return false
}

// echoSecret refuses a token request with an answer that holds the secret,
// encoded as Options.TokenEcho says, in the envelope's message, in an OAuth
// error_description and in a header.
func (s *Server) echoSecret(w http.ResponseWriter) {
	echo := encodeEcho(s.opts.TokenEcho, s.opts.ClientID, s.opts.ClientSecret)
	status := s.opts.TokenEchoStatus
	if status == 0 {
		status = http.StatusUnauthorized
	}
	// Written by hand: a JSON encoder would escape the echo once more.
	body := fmt.Sprintf(`{"code": 40001, "type": "NotAuthenticated", "detail": {"message": "Invalid client secret %s"}, `+
		`"error": "invalid_client", "error_description": "client_secret=%s", "status": %d}`, echo, echo, status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Debug-Secret", echo)
	w.WriteHeader(status)
	w.Write([]byte(body + "\n"))
}

// encodeEcho writes the secret in one of the EchoEncodings.
func encodeEcho(enc, id, secret string) string {
	var b strings.Builder
	switch enc {
	case "json":
		q, _ := json.Marshal(secret)
		return strings.Trim(string(q), `"`)
	case "json-php":
		for _, r := range secret {
			switch {
			case r == '/' || r == '"' || r == '\\':
				b.WriteString(`\` + string(r))
			case r < 0x20 || r > 0x7e:
				writeUnicodeEscape(&b, r, "%04x")
			default:
				b.WriteRune(r)
			}
		}
	case "json-unicode":
		for _, r := range secret {
			writeUnicodeEscape(&b, r, "%04X")
		}
	case "url":
		return url.QueryEscape(secret)
	case "url-lower":
		u := url.QueryEscape(secret)
		for i := 0; i < len(u); i++ {
			if u[i] == '%' && i+2 < len(u) {
				b.WriteString("%" + strings.ToLower(u[i+1:i+3]))
				i += 2
				continue
			}
			b.WriteByte(u[i])
		}
	case "html":
		for _, r := range secret {
			fmt.Fprintf(&b, "&#x%x;", r)
		}
	case "base64":
		return base64.StdEncoding.EncodeToString([]byte(secret))
	case "basic":
		return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
	default: // plain
		return secret
	}
	return b.String()
}

// writeUnicodeEscape writes r as JSON's \uXXXX, a surrogate pair beyond the
// Basic Multilingual Plane, with the hex digits in format.
func writeUnicodeEscape(b *strings.Builder, r rune, format string) {
	if r > 0xffff {
		r -= 0x10000
		fmt.Fprintf(b, `\u`+format+`\u`+format, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		return
	}
	fmt.Fprintf(b, `\u`+format, r)
}

// assignID gives c an id of the server's own when Options.AssignIDs is set.
func (s *Server) assignID(c *Customer) {
	if !s.opts.AssignIDs {
		return
	}
	var b [8]byte
	rand.Read(b[:]) // never fails, says crypto/rand
	c.CustomerID = "srv-" + hex.EncodeToString(b[:])
}

// answerEmail is the email a create answer carries: another person's when
// Options.OtherEmail is set.
func (s *Server) answerEmail(email string) string {
	if s.opts.OtherEmail {
		return "someone.else." + email
	}
	return email
}

// writeHTML answers a small web page, as a web server or proxy does.
func writeHTML(w http.ResponseWriter, status int, title, text string) {
	page := fmt.Sprintf("<!DOCTYPE html>\n<html><head><title>%s</title></head><body><h1>%s</h1><p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(text))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(status)
	w.Write([]byte(page))
}
