// Package sandbox provides a fake of the Ripio Ramp API, modelled on
// net/http/httptest: NewServer listens on a local port at once, URL and Client
// reach it, Close stops it. Tests, benchmarks, the sandbox command and the
// embedded default target all use it.
//
// The fake serves the two calls bulkcreate makes, as the seed OpenAPI
// document and API-NOTES.md describe them:
//
//   - POST /oauth2/token/ with HTTP Basic client credentials and the form
//     body grant_type=client_credentials answers a bearer token that lives
//     Options.TokenTTL (camelCase by default, snake_case with
//     Options.TokenSnakeCase, as Ripio's older API answers).
//   - POST /api/v1/customers/ with that token creates a customer from
//     {"customerId", "email", "type"} and answers 201, or 400 when the body
//     is invalid or the customerId (and, with Options.UniqueEmail, the email)
//     already exists.
//
// Every error answer uses Ripio's envelope
// {"code", "type", "detail": {"message", ...}, "status"}. The answers are
// written from maps in this package, never from the client's structs, so a
// wrong JSON tag cannot be agreed on by both sides.
//
// A create request passes these steps in order, and each knob acts at its
// step: bearer token (401), rate limit (429, Options.RateLimit, with
// Retry-After when Options.RetryAfter), latency (Options.Latency and
// LatencyJitter), body validation (400), an injected 503 before anything is
// stored (Options.FailBeforeCommit), the insert (400 on a duplicate), then
// one of the after-commit faults: an injected 500 (FailAfterCommit), a closed
// connection with no answer (DropAfterCommit), or an answer that never comes
// (HangAfterCommit). The after-commit faults are the cases an importer cannot
// tell apart from "not sent": the customer exists but the client does not
// know it. Stats counts every outcome so tests can check what the client
// believes against what the server did.
//
// The misbehaviours at the end of Options play servers that answer as the
// real API never should: a proxy's 200 HTML page, a server that assigns its
// own ids or answers another person's email, a token endpoint that echoes
// the client secret or is not there at all (404 HTML), and one that
// throttles every create. They act before the steps above.
//
// Customers live in memory, or in a SQLite file (Options.DBPath) that a later
// server can reopen to play a server that survived the client's crash. The
// fake has no deactivate endpoint, so every customer is active. Randomness
// (faults, jitter) comes from a PCG source seeded by Options.Seed, and time
// from Options.Now, so runs can be reproduced.
//
// A Server and all its methods are safe for concurrent use. Close releases
// handlers that are waiting (latency, HangAfterCommit) by closing their
// connections, and returns only after every handler has finished.
package sandbox
