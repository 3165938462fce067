package importer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// foldEmail is the form under which two spellings of one address are one
// person: trimmed, Unicode NFC, case-folded, the domain in its ASCII
// (IDNA) form. Row keys and derived customerIds (emailKey, CustomerIDFor)
// are made of it.
//
// A plain-ASCII email folds to strings.ToLower of it, byte for byte, as
// keys and customerIds always were: ledgers and servers hold ids derived
// by older binaries. Only an email with a non-ASCII character can fold
// otherwise than before: a Unicode domain (now in its xn-- form), a local
// part that full case folding changes otherwise than lower-casing ("ß"
// folds to "ss", final "ς" to "σ"), or text not in NFC.
func foldEmail(email string) string {
	email = strings.TrimSpace(email)
	if isASCII(email) {
		return strings.ToLower(email)
	}
	local, domain, hasAt := cutLast(norm.NFC.String(email), "@")
	local = norm.NFC.String(caseFold.String(local))
	if !hasAt {
		return local
	}
	return local + "@" + asciiDomain(domain)
}

// caseFold is safe for concurrent use: folding keeps no state.
var caseFold = cases.Fold()

// asciiDomain is domain in its ASCII form; a domain IDNA refuses (which
// validate does not let through) is case-folded instead.
func asciiDomain(domain string) string {
	if isASCII(domain) {
		return strings.ToLower(domain)
	}
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		return a
	}
	return norm.NFC.String(caseFold.String(domain))
}

// invisibleIn says where email holds a character no one can see or
// type, or returns "": a control character, a format character (a
// zero-width space, a BOM, a bidi control), another of Unicode's
// default-ignorable code points (a Hangul filler, the combining grapheme
// joiner, a variation selector) or a space other than ASCII's. Such an
// email looks like another person's, and would be a second customer.
func invisibleIn(email string) string {
	for i, r := range email {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) ||
			unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp) && r != ' ' ||
			r == '\u2800' { // the braille blank: a symbol that prints as a space
			return fmt.Sprintf("holds an invisible or control character, U+%04X, at byte %d: type the address again", r, i+1)
		}
	}
	return ""
}

// domainProblem says why the domain of an email is not a valid
// internationalised domain name, or returns "". Only a Unicode domain is
// checked: ASCII ones are taken as they always were.
func domainProblem(email string) string {
	if _, domain, ok := cutLast(email, "@"); ok && !isASCII(domain) {
		if _, err := idna.Lookup.ToASCII(domain); err != nil {
			return fmt.Sprintf("has a domain, %s, that is not a valid internationalised domain name", quote(domain))
		}
	}
	return ""
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
