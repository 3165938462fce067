package ripio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// maxAnswerBytes bounds what is read of any answer: a create or token answer
// is a few hundred bytes and an error envelope a few KiB, while a proxy's
// page or a hostile server may send without end.
const maxAnswerBytes = 64 << 10

// errAnswerTooLong is the read error of an answer longer than maxAnswerBytes.
var errAnswerTooLong = fmt.Errorf("longer than %d KiB", maxAnswerBytes>>10)

// readAnswer reads a body of at most maxAnswerBytes. A longer one returns
// its first maxAnswerBytes and errAnswerTooLong.
func readAnswer(body io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(body, maxAnswerBytes+1))
	if err == nil && len(data) > maxAnswerBytes {
		return data[:maxAnswerBytes], errAnswerTooLong
	}
	return data, err
}

// checkCreated believes a 2xx only when its body is the create answer: a
// JSON object that names the customer sent, by customerId or email or both,
// and names no other. A proxy's maintenance page, an empty or cut body, JSON
// of another shape and another person's answer are returned as an
// *AnswerError: the customer may or may not exist, and recording "created"
// would make every later run skip a row the server may never have seen.
func checkCreated(req CreateCustomerRequest, resp *http.Response, data []byte, hide []string) (Customer, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Customer{}, newAnswerError(resp, "the answer is empty", nil, hide)
	}
	var fields map[string]json.RawMessage
	if trimmed[0] != '{' || json.Unmarshal(trimmed, &fields) != nil {
		why := "the answer is not JSON"
		if json.Valid(trimmed) {
			why = "the answer is JSON but not an object"
		}
		return Customer{}, newAnswerError(resp, why, data, hide)
	}
	id, idOK := jsonID(fields["customerId"])
	email, emailOK := jsonString(fields["email"])
	switch {
	case !idOK || !emailOK:
		return Customer{}, newAnswerError(resp, "the answer's customerId or email is not a string", data, hide)
	case id == "" && email == "":
		return Customer{}, newAnswerError(resp, "the answer has neither customerId nor email", data, hide)
	case email != "" && !sameEmail(email, req.Email):
		// Another person's email is not quoted: it is not ours to log.
		return Customer{}, newAnswerError(resp, "the answer is for another email", nil, nil)
	case id != "" && id != req.CustomerID && email == "":
		// Without the email nothing says the answer is this customer's.
		return Customer{}, newAnswerError(resp, "the answer is for another customerId", nil, nil)
	}

	cust := Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type}
	switch {
	case id != "" && id != req.CustomerID:
		// The right email under another id: the server made the customer
		// and numbered it itself.
		cust.CustomerID, cust.AssignedID = id, id
	case id == req.CustomerID:
		cust.IDKept = true
	}
	if email != "" {
		cust.Email = email
	}
	if t, ok := jsonString(fields["type"]); ok && t != "" {
		cust.Type = CustomerType(t)
	}
	// The rest is informative: a field of an unexpected type stays zero.
	_ = json.Unmarshal(fields["isActive"], &cust.IsActive)
	_ = json.Unmarshal(fields["createdAt"], &cust.CreatedAt)
	return cust, nil
}

// jsonString reads an optional JSON string: absent and null read as "", ok;
// any other type is not ok.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonID reads an optional id, a string or a number, as text.
func jsonID(raw json.RawMessage) (string, bool) {
	if s, ok := jsonString(raw); ok {
		return s, true
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", false
	}
	return n.String(), true
}

// sameEmail compares emails as the server may have normalised them: trimmed,
// in Unicode NFC, ignoring case, the domain in its ASCII (IDNA) form, as
// the importer compares people.
func sameEmail(a, b string) bool {
	return strings.EqualFold(answerEmailForm(a), answerEmailForm(b))
}

func answerEmailForm(email string) string {
	email = norm.NFC.String(strings.TrimSpace(email))
	i := strings.LastIndex(email, "@")
	if i < 0 {
		return email
	}
	if domain, err := idna.Lookup.ToASCII(email[i+1:]); err == nil {
		return email[:i+1] + domain
	}
	return email
}

// AnswerError is a 2xx answer to Create Customer that is not the create
// answer (see [Client.CreateCustomer]). The server may or may not have
// created the customer: [Classify] says [InDoubt].
type AnswerError struct {
	Status      int
	ContentType string // the answer's media type, cleaned; "" when absent
	Problem     string // what is wrong with it, in the client's words
	Start       string // the body's first bytes, one line, secrets redacted; "" when not quoted
}

func newAnswerError(resp *http.Response, problem string, body []byte, hide []string) *AnswerError {
	e := &AnswerError{Status: resp.StatusCode, Problem: problem}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		e.ContentType = cleanText(mt, maxContentType, hide)
	}
	if len(body) > 0 {
		e.Start = cleanText(string(body), maxAnswerStart, hide)
	}
	return e
}

// Limits, in bytes, of what an AnswerError quotes, so that its text stays
// about 200 bytes.
const (
	maxContentType = 40
	maxAnswerStart = 60
)

func (e *AnswerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ripio: create customer: HTTP %d", e.Status)
	if e.ContentType != "" {
		fmt.Fprintf(&b, " %s", e.ContentType)
	}
	fmt.Fprintf(&b, " is not the create answer, outcome unknown: %s", e.Problem)
	if e.Start != "" {
		fmt.Fprintf(&b, ": %q", e.Start)
	}
	return b.String()
}
