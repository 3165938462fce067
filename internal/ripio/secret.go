package ripio

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"
)

// A server may echo what it was sent, and not always as sent: a PHP-style
// JSON encoder writes "/" as `\/` and non-ASCII as `\uXXXX`, a form parser
// percent-encodes in either case, an HTML page uses character references,
// and an Authorization header is base64. redact replaces the forms it knows
// exactly; echoes finds the rest by decoding the text, and then the whole
// text is withheld.

const (
	redacted = "[redacted]"
	withheld = "[text withheld: the answer echoed a credential]"
)

// basicCredentials is what an Authorization: Basic header carries, hidden
// whole so that a redacted echo does not leave the part that names the
// client.
func basicCredentials(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
}

// forms is a credential as a server could echo it back: as is,
// form-encoded, JSON-escaped (with and without `\/`), as HTML and as base64.
func forms(v string) []string {
	quoted, _ := json.Marshal(v)
	jsonForm := strings.Trim(string(quoted), `"`)
	return []string{
		v,
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte(v)),
		url.QueryEscape(v),
		url.PathEscape(v),
		jsonForm,
		strings.ReplaceAll(jsonForm, "/", `\/`),
		html.EscapeString(v),
	}
}

// redact replaces every form of every hide value, and the one-line form of
// each, longest first so that a value containing another is replaced whole.
func redact(s string, hide []string) string {
	var vals []string
	for _, h := range hide {
		if h == "" {
			continue
		}
		for _, f := range forms(h) {
			vals = append(vals, f)
			if o := oneLine(f); o != "" && o != f {
				vals = append(vals, o)
			}
		}
	}
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		s = strings.ReplaceAll(s, v, redacted)
	}
	return s
}

// targets is what echoes looks for: the non-empty hide values and their
// one-line forms.
func targets(hide []string) []string {
	var vals []string
	for _, h := range hide {
		if h == "" {
			continue
		}
		vals = append(vals, h)
		if o := oneLine(h); o != "" && o != h {
			vals = append(vals, o)
		}
	}
	return vals
}

// echoDepth is how many encodings deep echoes looks: a JSON-escaped secret
// inside a percent-encoded form, say.
const echoDepth = 2

// echoes reports whether s holds a hide value, or a piece of one, in any
// encoding a server may echo it in: JSON string escapes, percent-encoding in
// either case, HTML character references, base64 of the standard or URL
// alphabet at any alignment, or these nested echoDepth deep. A piece is
// enough: net/http, for one, quotes a malformed status line only up to its
// first space.
func echoes(s string, hide []string) bool {
	vals := targets(hide)
	if len(vals) == 0 {
		return false
	}
	views := []string{s}
	for depth := 0; len(views) > 0; depth++ {
		var next []string
		for _, v := range views {
			if holdsPiece(v, vals) {
				return true
			}
			if base64Holds(v, vals) {
				return true
			}
			if depth == echoDepth {
				continue
			}
			for _, decode := range []func(string) string{jsonUnescape, percentUnescape, html.UnescapeString} {
				if d := decode(v); d != v {
					next = append(next, oneLine(d))
				}
			}
		}
		views = next
	}
	return false
}

// jsonUnescape decodes JSON string escapes wherever they are; anything that
// is not one is kept.
func jsonUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		c := s[i+1]
		switch c {
		case 'u', 'U':
			if r, n := unicodeEscape(s[i:]); n > 0 {
				b.WriteRune(r)
				i += n - 1
				continue
			}
			b.WriteByte('\\')
			continue
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		default: // \" \\ \/ and any other escaped character
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

// unicodeEscape reads \uXXXX at the start of s, or a surrogate pair of two,
// and returns the rune and the bytes used; n is 0 when there is none.
func unicodeEscape(s string) (r rune, n int) {
	hex4 := func(s string) (rune, bool) {
		if len(s) < 6 || s[0] != '\\' || (s[1] != 'u' && s[1] != 'U') {
			return 0, false
		}
		var v rune
		for _, c := range s[2:6] {
			d, ok := hexDigit(byte(c))
			if !ok {
				return 0, false
			}
			v = v<<4 | rune(d)
		}
		return v, true
	}
	hi, ok := hex4(s)
	if !ok {
		return 0, 0
	}
	if hi >= 0xD800 && hi < 0xDC00 {
		if lo, ok := hex4(s[6:]); ok && lo >= 0xDC00 && lo < 0xE000 {
			return (hi-0xD800)<<10 | (lo - 0xDC00) + 0x10000, 12
		}
	}
	if !utf8.ValidRune(hi) {
		return utf8.RuneError, 6
	}
	return hi, 6
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentUnescape decodes %XX in either case and + as a space; a % that
// starts no escape is kept.
func percentUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s):
			hi, ok1 := hexDigit(s[i+1])
			lo, ok2 := hexDigit(s[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// minBase64Run is the shortest run of base64 characters worth decoding: a
// shorter one cannot hold a piece of a credential wherever it is aligned.
const minBase64Run = (pieceLen+2)/3*4 + 3

// base64Holds reports whether a run of base64 characters in s decodes, at
// one of the four alignments, to text holding one of vals.
func base64Holds(s string, vals []string) bool {
	isB64 := func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
	}
	for i := 0; i < len(s); {
		if !isB64(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isB64(s[j]) {
			j++
		}
		run := s[i:j]
		i = j
		if len(run) < minBase64Run {
			continue
		}
		run = strings.NewReplacer("-", "+", "_", "/").Replace(run)
		for off := 0; off < 4 && off < len(run); off++ {
			part := run[off:]
			part = part[:len(part)-len(part)%4]
			dec, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(part, "="))
			if err != nil {
				// A run may end in bits that are not zero; decode all but
				// the last quantum.
				if len(part) < 8 {
					continue
				}
				dec, err = base64.RawStdEncoding.DecodeString(part[:len(part)-4])
				if err != nil {
					continue
				}
			}
			if holdsPiece(string(dec), vals) {
				return true
			}
		}
	}
	return false
}

// pieceLen is the length of the pieces of a credential holdsPiece looks
// for: long enough not to occur by chance in an error text, short enough
// that a text holding less says little of the credential.
const pieceLen = 8

// minEchoLen is the shortest value holdsPiece looks for: a shorter one
// would match any text. redact still replaces it where it stands as sent.
const minEchoLen = 6

// holdsPiece reports whether s holds one of vals, or pieceLen bytes of one.
func holdsPiece(s string, vals []string) bool {
	for _, v := range vals {
		if len(v) < minEchoLen {
			continue
		}
		if len(v) <= pieceLen {
			if strings.Contains(s, v) {
				return true
			}
			continue
		}
		for i := 0; i+pieceLen <= len(v); i++ {
			if strings.Contains(s, v[i:i+pieceLen]) {
				return true
			}
		}
	}
	return false
}

// scrubbedError is a transport error whose text held a credential. It has
// no Unwrap, so that the text cannot be reached through the chain either;
// what Unreachable needs of the cause is kept.
type scrubbedError struct {
	text        string
	unreachable bool
}

func (e *scrubbedError) Error() string { return e.text }

// scrubError takes the *url.Error wrapper off err and, when its text holds a
// hide value in any form (net/http quotes a malformed answer's bytes), hides
// the text behind a scrubbedError.
func scrubError(err error, hide []string) error {
	err = scrubURLError(err)
	if err == nil {
		return nil
	}
	text := err.Error()
	if clean := cleanText(text, len(text), hide); clean != oneLine(text) {
		return &scrubbedError{text: clean, unreachable: unreachableCause(err)}
	}
	return err
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
