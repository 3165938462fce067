package sandbox

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.stats.tokenRequests.Add(1)

	id, secret, ok := r.BasicAuth()
	if !ok || !s.validClient(id, secret) {
		w.Header().Set("WWW-Authenticate", `Basic realm="api"`)
		writeError(w, http.StatusUnauthorized, 40001, "NotAuthenticated",
			detail{"message": "Invalid client credentials.", "code": "not_authenticated"})
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		validationError(w, "grant_type", "Could not read the form body.")
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		validationError(w, "grant_type", "This field is required.")
		return
	default:
		validationError(w, "grant_type", fmt.Sprintf("%q is not a supported grant type; use client_credentials.", gt))
		return
	}

	var b [32]byte
	rand.Read(b[:]) // never fails, says crypto/rand
	token := hex.EncodeToString(b[:])
	ttl := s.opts.TokenTTL
	s.storeToken(token, s.opts.Now().Add(ttl))

	expiresIn := int64(math.Ceil(ttl.Seconds()))
	var body map[string]any
	if s.opts.TokenSnakeCase {
		body = map[string]any{"access_token": token, "expires_in": expiresIn, "token_type": "Bearer", "scope": "read write"}
	} else {
		body = map[string]any{"accessToken": token, "expiresIn": expiresIn, "tokenType": "Bearer", "scope": "read write"}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) validClient(id, secret string) bool {
	// Both compared, always, so the time taken says nothing about which one
	// was wrong.
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret))
	return idOK&secretOK == 1
}

func (s *Server) storeToken(token string, expiry time.Time) {
	s.tokensMu.Lock()
	defer s.tokensMu.Unlock()
	if len(s.tokens) >= s.nextSweep {
		now := s.opts.Now()
		for t, exp := range s.tokens {
			if !now.Before(exp) {
				delete(s.tokens, t)
			}
		}
		s.nextSweep = 2*len(s.tokens) + 1024
	}
	s.tokens[token] = expiry
}

// authorized reports whether r carries a bearer token that the server issued
// and that has not expired.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	token = strings.TrimSpace(token)
	s.tokensMu.Lock()
	exp, ok := s.tokens[token]
	s.tokensMu.Unlock()
	return ok && s.opts.Now().Before(exp)
}
