package ripio

import (
	"net/http"
	"time"
)

// Hooks into unexported code, for the fuzz tests of package ripio_test:
// going through a client and a server is too slow for fuzzing.

// ParseAPIError decodes an error answer of the given status and
// Retry-After as the client does, with hide redacted.
func ParseAPIError(status int, retryAfter string, body []byte, hide ...string) *APIError {
	resp := &http.Response{StatusCode: status, Header: http.Header{}}
	if retryAfter != "" {
		resp.Header.Set("Retry-After", retryAfter)
	}
	return parseAPIError(resp, body, hide...)
}

// ParseToken decodes a 200 token answer as the client does.
func ParseToken(body []byte, issued time.Time) (accessToken string, expiry time.Time, err error) {
	tok, err := parseToken(body, issued)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok.AccessToken, tok.Expiry, nil
}
