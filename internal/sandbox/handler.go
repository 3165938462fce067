package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The paths end with a slash, as Ripio's do; the bare path is a 404, not a
// redirect, so that a client that drops the slash notices.
const (
	tokenPath     = "/oauth2/token/"
	customersPath = "/api/v1/customers/"
)

const maxBodyBytes = 1 << 20

// serveHTTP routes a request and keeps the books every route shares: the
// in-flight count Close waits for, and the request log.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		writeError(w, http.StatusServiceUnavailable, 50300, "ServiceUnavailable", detail{"message": "Server is shutting down."})
		return
	}
	defer s.inflight.Done()

	rec := &recorder{ResponseWriter: w}
	if s.opts.Logf != nil {
		start := time.Now()
		defer func() {
			outcome := strconv.Itoa(rec.status)
			if rec.outcome != "" {
				outcome = rec.outcome
			}
			s.opts.Logf("sandbox: %s %s %s %v", r.Method, r.URL.Path, outcome, time.Since(start).Round(time.Microsecond))
		}()
	}

	if s.misbehave(rec, r) {
		return
	}
	switch r.URL.Path {
	case tokenPath:
		if r.Method != http.MethodPost {
			methodNotAllowed(rec, r)
			return
		}
		s.handleToken(rec, r)
	case customersPath:
		if r.Method != http.MethodPost {
			methodNotAllowed(rec, r)
			return
		}
		s.handleCreate(rec, r)
	default:
		writeError(rec, http.StatusNotFound, 40400, "NotFound", detail{"message": "Not found.", "code": "not_found"})
	}
}

func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	writeError(w, http.StatusMethodNotAllowed, 40500, "MethodNotAllowed",
		detail{"message": fmt.Sprintf("Method %q not allowed.", r.Method), "code": "method_not_allowed"})
}

// handleCreate answers Create Customer in steps: admit the caller, wait
// out the latency, read the body, store the customer, answer. A step that
// ends the request has answered it (or dropped it) itself.
func (s *Server) handleCreate(w *recorder, r *http.Request) {
	s.stats.requests.Add(1)
	if !s.admit(w, r) || !s.delay(w, r) {
		return
	}
	c, ok := s.readCustomer(w, r)
	if !ok || !s.commit(w, &c) {
		return
	}
	s.answerCreated(w, r, c)
}

// admit refuses a caller without a valid token, then one over the rate limit.
func (s *Server) admit(w *recorder, r *http.Request) bool {
	if !s.authorized(r) {
		s.stats.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
		writeError(w, http.StatusUnauthorized, 40001, "NotAuthenticated",
			detail{"message": "Authentication credentials were not provided.", "code": "not_authenticated"})
		return false
	}

	if wait, ok := s.allow(); !ok {
		s.stats.throttled.Add(1)
		if s.opts.RetryAfter {
			// The small subtraction keeps float error from turning an
			// exact 1s into 2.
			secs := max(1, int64(math.Ceil(wait.Seconds()-1e-9)))
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		}
		writeError(w, http.StatusTooManyRequests, 42900, "Throttled",
			detail{"message": "Request was throttled.", "code": "throttled"})
		return false
	}
	return true
}

// delay waits the configured latency; false when the client went away or
// the server is closing meanwhile.
func (s *Server) delay(w *recorder, r *http.Request) bool {
	if d := s.latency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			w.outcome = "client gone"
			return false
		case <-s.done:
			t.Stop()
			s.drop(w)
			return false
		}
	}
	return true
}

// readCustomer reads the body, refusing one that is not JSON or whose
// fields are not valid.
func (s *Server) readCustomer(w *recorder, r *http.Request) (Customer, bool) {
	c, fieldErrs, parseErr := parseCustomer(w, r)
	switch {
	case parseErr != "":
		s.stats.rejected.Add(1)
		writeError(w, http.StatusBadRequest, 20001, "ParseError", detail{"message": "JSON parse error - " + parseErr})
		return c, false
	case len(fieldErrs) > 0:
		s.stats.rejected.Add(1)
		writeFieldErrors(w, fieldErrs)
		return c, false
	case s.rejects(c.Email):
		s.stats.rejected.Add(1)
		validationError(w, "email", "Enter a valid email address.")
		return c, false
	}
	return c, true
}

// rejects reports whether Options.RejectEmails holds email, ignoring case.
func (s *Server) rejects(email string) bool {
	for _, e := range s.opts.RejectEmails {
		if strings.EqualFold(e, email) {
			return true
		}
	}
	return false
}

// commit stores c, unless a fault before the commit is drawn, and refuses
// a customer already there.
func (s *Server) commit(w *recorder, c *Customer) bool {
	if s.draw() < s.opts.FailBeforeCommit {
		s.stats.failedBeforeCommit.Add(1)
		writeError(w, http.StatusServiceUnavailable, 50300, "ServiceUnavailable",
			detail{"message": "Service temporarily unavailable, try again later.", "code": "service_unavailable"})
		return false
	}

	s.assignID(c)
	c.IsActive = true
	c.CreatedAt = s.opts.Now().UTC()
	switch err := s.store.insert(*c, s.opts.UniqueEmail); {
	case errors.Is(err, errDuplicateID):
		s.stats.duplicates.Add(1)
		writeError(w, http.StatusBadRequest, 20000, "ValidationError",
			detail{"message": "customerId already exists", "customerId": []string{"customer with this customerId already exists."}})
		return false
	case errors.Is(err, errDuplicateEmail):
		s.stats.duplicates.Add(1)
		writeError(w, http.StatusBadRequest, 20000, "ValidationError",
			detail{"message": "email already exists", "email": []string{"customer with this email already exists."}})
		return false
	case err != nil:
		s.logf("sandbox: %v", err)
		writeError(w, http.StatusInternalServerError, 50000, "ServerError", detail{"message": "A server error occurred."})
		return false
	}
	s.stats.created.Add(1)
	return true
}

// answerCreated answers a stored customer, or, as drawn, fails, drops or
// hangs instead.
func (s *Server) answerCreated(w *recorder, r *http.Request, c Customer) {
	// One draw decides among the after-commit faults, so that each knob is
	// exactly its fraction of stored customers.
	u := s.draw()
	o := &s.opts
	switch {
	case u < o.FailAfterCommit:
		s.stats.failedAfterCommit.Add(1)
		writeError(w, http.StatusInternalServerError, 50000, "ServerError", detail{"message": "A server error occurred."})
	case u < o.FailAfterCommit+o.DropAfterCommit:
		s.stats.dropped.Add(1)
		s.drop(w)
	case u < o.FailAfterCommit+o.DropAfterCommit+o.HangAfterCommit:
		s.stats.hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		// Whoever ended the wait, an answer must never come.
		s.drop(w)
		w.outcome = "hung"
	default:
		writeJSON(w, http.StatusCreated, map[string]any{
			"customerId": c.CustomerID,
			"email":      s.answerEmail(c.Email),
			"type":       c.Type,
			"isActive":   c.IsActive,
			"createdAt":  c.CreatedAt.Format(time.RFC3339Nano),
		})
	}
}

// drop closes the connection under w without answering.
func (s *Server) drop(w *recorder) {
	w.outcome = "dropped"
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2, or a wrapper that hides it): this panic
		// is net/http's way to abort the answer.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

type fieldError struct{ field, why string }

// parseCustomer reads a create body. It returns a parse error message when the
// body is not a JSON object, or else the field errors, in field order.
func parseCustomer(w http.ResponseWriter, r *http.Request) (c Customer, errs []fieldError, parseErr string) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return c, nil, fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes)
		}
		return c, nil, "could not read the request body"
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return c, nil, err.Error()
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return c, nil, fmt.Sprintf("expected a JSON object, got %s", jsonKind(v))
	}

	str := func(field string) (string, bool) {
		raw, present := obj[field]
		switch s, isString := raw.(string); {
		case !present:
			errs = append(errs, fieldError{field, "This field is required."})
		case raw == nil:
			errs = append(errs, fieldError{field, "This field may not be null."})
		case !isString:
			errs = append(errs, fieldError{field, "Not a valid string."})
		case strings.TrimSpace(s) == "":
			errs = append(errs, fieldError{field, "This field may not be blank."})
		default:
			return s, true
		}
		return "", false
	}

	c.CustomerID, _ = str("customerId")
	if email, ok := str("email"); ok {
		switch a, err := mail.ParseAddress(email); {
		case utf8.RuneCountInString(email) > 254:
			errs = append(errs, fieldError{"email", "Ensure this field has no more than 254 characters."})
		case err != nil || a.Name != "" || a.Address != email:
			errs = append(errs, fieldError{"email", "Enter a valid email address."})
		default:
			c.Email = email
		}
	}
	if typ, ok := str("type"); ok {
		if typ == "INDIVIDUAL" || typ == "BUSINESS" {
			c.Type = typ
		} else {
			errs = append(errs, fieldError{"type", fmt.Sprintf("%q is not a valid choice.", typ)})
		}
	}
	return c, errs, ""
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

type detail map[string]any

// writeFieldErrors answers 400 ValidationError with one "<field>: <why>" per
// failing field in the message, and each field's reasons under its name.
func writeFieldErrors(w http.ResponseWriter, errs []fieldError) {
	d := detail{}
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.field+": "+e.why)
		d[e.field] = []string{e.why}
	}
	d["message"] = strings.Join(msgs, "; ")
	writeError(w, http.StatusBadRequest, 20000, "ValidationError", d)
}

func validationError(w http.ResponseWriter, field, why string) {
	writeFieldErrors(w, []fieldError{{field, why}})
}

// writeError answers Ripio's error envelope.
func writeError(w http.ResponseWriter, status, code int, typ string, d detail) {
	writeJSON(w, status, map[string]any{"code": code, "type": typ, "detail": d, "status": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Only maps of strings, numbers and bools get here.
		panic(fmt.Sprintf("sandbox: marshal answer: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// recorder remembers the status for the request log. Unwrap lets
// http.ResponseController reach the connection beneath.
type recorder struct {
	http.ResponseWriter
	status  int
	outcome string // replaces the status in the log: "dropped", "hung", ...
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
