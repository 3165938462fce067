package importer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// RowError is a row that failed validation. It names the file, line and
// field, like csv.ParseError.
type RowError struct {
	File   string
	Line   int
	Field  string // "email", "type", "customerId", or "" for the whole row
	Reason string
}

func (e *RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Reason)
}

// Row is a valid row, ready to plan and send.
type Row struct {
	Line       int
	Email      string // trimmed, as written
	Type       ripio.CustomerType
	CustomerID string // sent as customerId; empty until planned for rows keyed by email
	Key        string // the ledger's row key
	// file is the source file of a row a worker claimed (fleet.go); ""
	// for a row of the run's own file (Config.SourceFile).
	file string
	// run is the fleet import that queued a row a worker claimed; 0 for a
	// row of the run's own file.
	run int64
}

// customerNamespace roots the UUIDv5 customerIds derived from emails: the
// same email always gets the same id, so a re-sent row is refused by the
// server as a duplicate instead of creating a second customer.
var customerNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://bulkcreate.dev/customer"))

// CustomerIDFor is the customerId bulkcreate sends for an email when the
// CSV has no customerId column: one per person, as foldEmail compares
// emails. It never changes for a plain-ASCII email.
func CustomerIDFor(email string) string {
	return uuid.NewSHA1(customerNamespace, []byte(foldEmail(email))).String()
}

const maxEmailLen = 254

// validate turns a record into a Row, or says which field is wrong.
func validate(file string, rec record) (Row, *RowError) {
	fail := func(field, format string, args ...any) (Row, *RowError) {
		return Row{}, &RowError{File: file, Line: rec.Line, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if rec.Err != nil {
		return fail("", "%v", rec.Err)
	}
	email := strings.TrimSpace(rec.Email)
	switch {
	case email == "":
		return fail("email", "is empty")
	case !utf8.ValidString(email):
		return fail("email", "is not valid UTF-8")
	case len(email) > maxEmailLen:
		return fail("email", "is %d characters long; at most %d", len(email), maxEmailLen)
	}
	if problem := invisibleIn(email); problem != "" {
		return fail("email", "%s", problem)
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Name != "" || addr.Address != email {
		return fail("email", "%q is not a bare email address", email)
	}
	if at := strings.LastIndexByte(email, '@'); at < 1 || !strings.Contains(email[at+1:], ".") {
		return fail("email", "%q has no domain with a dot", email)
	}
	if problem := domainProblem(email); problem != "" {
		return fail("email", "%q %s", email, problem)
	}
	typ := ripio.CustomerType(strings.ToUpper(strings.TrimSpace(rec.Type)))
	switch typ {
	case ripio.Individual, ripio.Business:
	case "":
		return fail("type", "is empty; want INDIVIDUAL or BUSINESS")
	default:
		return fail("type", "%s is not INDIVIDUAL or BUSINESS", quote(strings.TrimSpace(rec.Type)))
	}
	row := Row{Line: rec.Line, Email: email, Type: typ}
	if id := strings.TrimSpace(rec.CustomerID); id != "" {
		if len(id) > 128 || !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return r < ' ' }) {
			return fail("customerId", "%s is not a usable id (printable, at most 128 characters)", quote(id))
		}
		row.CustomerID = id
		row.Key = "id:" + id
	} else {
		// The customerId is derived (CustomerIDFor) only for rows that are
		// sent: a resume skips most rows, and the hash is a tenth of its time.
		row.Key = emailKey(email)
	}
	return row, nil
}

// emailKey is the ledger's key of a row without a customerId column: its
// email as foldEmail compares emails.
func emailKey(email string) string { return "email:" + foldEmail(email) }

// fingerprint identifies a row's content, so that a rejected row is sent
// again only once it has changed.
func (r Row) fingerprint() string {
	h := sha256.Sum256([]byte(strings.ToLower(r.Email) + "\x00" + string(r.Type) + "\x00" + r.CustomerID))
	return hex.EncodeToString(h[:8])
}
