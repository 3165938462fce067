package importer

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestCustomerIDFor_GoldenForASCIIEmails: the row key and the derived
// customerId of a plain-ASCII email are what every earlier release made
// (strings.ToLower of the trimmed email): ledgers and servers hold them.
// The values were computed by the release before foldEmail; never update
// them.
func TestCustomerIDFor_GoldenForASCIIEmails(t *testing.T) {
	t.Parallel()
	golden := []struct{ email, customerID, key string }{
		{"ana@example.com", "acb0ffa9-aa89-5967-baed-f895bdd2c431", "email:ana@example.com"},
		{"  Ana@Example.COM ", "acb0ffa9-aa89-5967-baed-f895bdd2c431", "email:ana@example.com"},
		{"finance@acme.example.com", "4171ec3a-f885-5294-ad03-908e7e066b91", "email:finance@acme.example.com"},
		{"John.O'Brien+tag@Sub.Example.CO.UK", "ceee80a6-19b4-515d-bfcb-5ee7e00c9fd7", "email:john.o'brien+tag@sub.example.co.uk"},
		{"\tUSER_1@my_host.example.com\r\n", "42b3824a-ce27-511d-908e-ee87e77008b2", "email:user_1@my_host.example.com"},
		{"a.b-c@xn--mnchen-3ya.de", "f0fe885c-6509-547e-9e0a-c14a0c628ce8", "email:a.b-c@xn--mnchen-3ya.de"},
		{"\"quoted local\"@example.org", "4b78877a-8bf8-502a-9d5d-d563816610c5", "email:\"quoted local\"@example.org"},
		{"x@EXAMPLE.museum", "78cc8671-9ba8-5021-9112-6ca19e6ba921", "email:x@example.museum"},
		{"ZZ-top!#$%&*/=?^`{|}~@example.net", "ac8588bd-e232-5969-9c1e-53cdbaef4fc0", "email:zz-top!#$%&*/=?^`{|}~@example.net"},
		{"0123456789@123.example", "7c646283-6092-59a2-8fbd-ed5304a904e2", "email:0123456789@123.example"},
		// Non-ASCII, already NFC, where folding is lower-casing: unchanged too.
		{"josé@example.com", "97772c4a-d5c5-56ac-bafc-3fca2e254a6a", "email:josé@example.com"},
	}
	for _, g := range golden {
		if got := CustomerIDFor(g.email); got != g.customerID {
			t.Errorf("CustomerIDFor(%q) = %s, want %s", g.email, got, g.customerID)
		}
		if got := emailKey(strings.TrimSpace(g.email)); got != g.key {
			t.Errorf("emailKey(%q) = %q, want %q", strings.TrimSpace(g.email), got, g.key)
		}
	}
	// Every ASCII character, in the local part and in the domain.
	ns := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://bulkcreate.dev/customer"))
	for c := range 128 {
		e := " Ab" + string(rune(c)) + "C@Ex" + string(rune(c)) + "AMPLE.com "
		old := strings.ToLower(strings.TrimSpace(e))
		if got := foldEmail(e); got != old {
			t.Errorf("foldEmail(%q) = %q, want %q as before", e, got, old)
		}
		if got, want := CustomerIDFor(e), uuid.NewSHA1(ns, []byte(old)).String(); got != want {
			t.Errorf("CustomerIDFor(%q) = %s, want %s as before", e, got, want)
		}
	}
}

// TestFoldEmail_OnePersonWhateverTheSpelling: case, Unicode normal form
// and a Unicode or ASCII domain do not make another person.
func TestFoldEmail_OnePersonWhateverTheSpelling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		same  []string
		folds string
	}{
		{"Case", []string{"Ana@Example.com", "ANA@EXAMPLE.COM", " ana@example.com\t"}, "ana@example.com"},
		{"NFC", []string{"jos\u00e9@example.com", "jose\u0301@example.com", "JOSE\u0301@Example.com"}, "jos\u00e9@example.com"},
		{"FullCaseFolding", []string{"STRASSE@example.de", "straße@example.de", "Straße@example.de"}, "strasse@example.de"},
		{"GreekFinalSigma", []string{"ΣΟΦΙΑΣ@example.gr", "σοφιας@example.gr", "σοφιασ@example.gr"}, "σοφιασ@example.gr"},
		{"IDNA", []string{"ana@münchen.de", "Ana@MÜNCHEN.de", "ana@mu\u0308nchen.de", "ana@xn--mnchen-3ya.de"}, "ana@xn--mnchen-3ya.de"},
	}
	for _, tt := range tests {
		for _, e := range tt.same {
			if got := foldEmail(e); got != tt.folds {
				t.Errorf("%s: foldEmail(%q) = %q, want %q", tt.name, e, got, tt.folds)
			}
			if CustomerIDFor(e) != CustomerIDFor(tt.same[0]) {
				t.Errorf("%s: CustomerIDFor(%q) differs from CustomerIDFor(%q)", tt.name, e, tt.same[0])
			}
		}
	}
}

// TestValidate_RefusesEmailsWithInvisibleCharacters: a zero-width space,
// a BOM inside the field, bidi controls, other control characters and a
// no-break space make an email invalid, so that "alice@" and
// "alice<U+200B>@" cannot be two customers; so does a Unicode domain
// IDNA refuses.
func TestValidate_RefusesEmailsWithInvisibleCharacters(t *testing.T) {
	t.Parallel()
	tests := []struct{ email, want string }{
		{"alice\u200b@example.com", "U+200B, at byte 6"},
		{"\ufeffalice@example.com", "U+FEFF, at byte 1"},
		{"alice@exa\u202emple.com", "U+202E"},
		{"ali\u2066ce@example.com", "U+2066"},
		{"ali\u00adce@example.com", "U+00AD"},
		{"alice\x7f@example.com", "U+007F"},
		{"ali\x00ce@example.com", "U+0000"},
		{"ali\u00a0ce@example.com", "U+00A0"},
		{"alice@ex\u2028ample.com", "U+2028"},
		{"alice@exa_mplé.com", "not a valid internationalised domain name"},
		// Default-ignorable characters that are not format characters
		// (Unicode's Other_Default_Ignorable_Code_Point) and variation
		// selectors render as nothing too: Hangul fillers, the combining
		// grapheme joiner, Khmer inherent vowels.
		{"alice\u3164@example.com", "U+3164"},
		{"alice\u115f@example.com", "U+115F"},
		{"alice\u1160@example.com", "U+1160"},
		{"alice\uffa0@example.com", "U+FFA0"},
		{"alice\u2800@example.com", "U+2800"}, // the braille blank prints as a space
		{"ali\u034fce@example.com", "U+034F"},
		{"ali\u17b4ce@example.com", "U+17B4"},
		{"alice\ufe0f@example.com", "U+FE0F"},
		{"alice\U000E0100@example.com", "U+E0100"},
	}
	for _, tt := range tests {
		_, rowErr := validate("f.csv", record{Line: 2, Email: tt.email, Type: "INDIVIDUAL"})
		if rowErr == nil || rowErr.Field != "email" || !strings.Contains(rowErr.Reason, tt.want) {
			t.Errorf("validate(%q) = %v, want an email error naming %q", tt.email, rowErr, tt.want)
		}
	}
	for _, ok := range []string{"alice@example.com", "josé@example.com", "ana@münchen.de", "用户@例子.广告"} {
		if _, rowErr := validate("f.csv", record{Line: 2, Email: ok, Type: "INDIVIDUAL"}); rowErr != nil {
			t.Errorf("validate(%q) = %v, want valid", ok, rowErr)
		}
	}
}
