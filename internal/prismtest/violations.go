package prismtest

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Violations returns every request-validation problem Prism has reported
// since it started, in order, one string per problem:
//
//	POST /api/v1/customers/: request.body Request body must have required property 'email'
//	POST /oauth2/token/: Request body property grant_type must be equal to one of the allowed values: client_credentials
//	POST /api/v1/customers: prism refused the request: https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR: Route not resolved, no path matched
//
// That is: schema, security (missing/wrong Authorization) and content-type
// violations of a request, and requests to a path or method the document
// does not have. Problems of Prism's own responses ("Violation: response…")
// are not included: they are the document's, not the client's.
//
// Prism prints its log asynchronously, so Violations first sends Prism a
// barrier request and waits until the log shows it; every request that was
// answered before the call is therefore accounted for.
func (m *Mock) Violations() []string {
	m.t.Helper()
	m.flush()
	return parseViolations(m.out.String())
}

// flush sends GET /__prismtest/flush/N and waits until Prism has logged it.
// Prism writes its log lines in order, so by then the lines of every request
// answered earlier are in m.out.
func (m *Mock) flush() {
	m.t.Helper()
	select {
	case <-m.exited:
		return // the output is complete once the process has been reaped
	default:
	}
	path := flushPathPrefix + strconv.FormatInt(m.flushN.Add(1), 10)
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+path, nil)
	if err != nil {
		m.t.Errorf("prismtest: flush: %v", err)
		return
	}
	resp, err := m.client.Do(req)
	if err != nil {
		m.t.Errorf("prismtest: flush request to prism failed: %v", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	marker := "get " + path + " " // the line's prefix carries method and path
	for {
		log := m.out.String()
		if i := strings.Index(log, marker); i >= 0 && strings.Contains(log[i:], "Request terminated") {
			return
		}
		select {
		case <-m.exited:
			return
		case <-ctx.Done():
			m.t.Errorf("prismtest: prism did not log the flush request %s within %v; violations may be incomplete", path, flushTimeout)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Prism (signale) log lines look like
//
//	[11:37:44 AM] › [HTTP SERVER] post /api/v1/customers/ ℹ  info      Request received
//	[11:37:44 AM] ›     [VALIDATOR] ⚠  warning   Request did not pass the validation rules
//	[11:37:44 AM] ›     [VALIDATOR] ✖  error     Request body must have required property 'email'
//	[11:37:44 AM] ›     [VALIDATOR] ✖  error     Violation: request.body Request body must have required property 'email'
//	[11:37:44 AM] › [HTTP SERVER] post /oauth2/token/ ✖  error     Request terminated with error: https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY: Invalid request
var (
	ansiRe      = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	serverRe    = regexp.MustCompile(`\[HTTP SERVER\] (\S+) (\S+) \S+\s+(\w+)\s+(.*)$`)
	validatorRe = regexp.MustCompile(`\[VALIDATOR\] \S+\s+(\w+)\s+(.*)$`)
)

// parseViolations extracts the request problems from Prism's log.
//
// Prism handles one request at a time from "Request received" to its last log
// line (the work in between is synchronous in node), so the lines up to the
// next "Request received" belong to that request. Per request:
//   - when Prism found an answer in the document (e.g. the 400 or 401 of the
//     spec), it logs every input violation as "Violation: request<.location> msg":
//     those are used, they carry the location;
//   - when it had to make up the answer (422, 401, 415 problem+json), it only
//     logs the bare messages after "Request did not pass the validation rules";
//   - when the route is unknown (404/405), there is no validation, only
//     "Request terminated with error: …": that is reported too.
func parseViolations(log string) []string {
	var (
		out                   []string
		method, path          string
		located, bare, routed []string
		invalid               bool
	)
	emit := func() {
		if method == "" || strings.HasPrefix(path, flushPathPrefix) {
			return
		}
		where := strings.ToUpper(method) + " " + path + ": "
		switch {
		case len(located) > 0:
			for _, v := range located {
				out = append(out, where+v)
			}
		case len(bare) > 0:
			for _, v := range bare {
				out = append(out, where+v)
			}
		case len(routed) > 0:
			for _, v := range routed {
				out = append(out, where+"prism refused the request: "+v)
			}
		}
	}

	for _, line := range strings.Split(ansiRe.ReplaceAllString(log, ""), "\n") {
		line = strings.TrimRight(line, "\r")
		if sm := serverRe.FindStringSubmatch(line); sm != nil {
			msg := sm[4]
			switch {
			case msg == "Request received":
				emit()
				method, path = sm[1], sm[2]
				located, bare, routed, invalid = nil, nil, nil, false
			case strings.HasPrefix(msg, "Request terminated with error: "):
				// For validation failures the messages are already in
				// located/bare; keep this only for routing errors.
				if !invalid && sm[1] == method && sm[2] == path {
					routed = append(routed, strings.TrimPrefix(msg, "Request terminated with error: "))
				}
			}
			continue
		}
		vm := validatorRe.FindStringSubmatch(line)
		if vm == nil {
			continue
		}
		level, msg := vm[1], vm[2]
		switch {
		case strings.HasPrefix(msg, "Violation: request"):
			v := strings.TrimPrefix(msg, "Violation: ")
			if level != "error" {
				v += " (" + level + ")"
			}
			located = append(located, v)
		case strings.HasPrefix(msg, "Violation: "):
			// "Violation: response…": Prism's own answer vs the document.
		case msg == "Request did not pass the validation rules":
			invalid = true
		case level == "error" && invalid:
			bare = append(bare, msg)
		}
	}
	emit()
	return out
}
