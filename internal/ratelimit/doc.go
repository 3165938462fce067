// Package ratelimit paces the whole worker pool against one API budget
// that the server does not announce.
//
// # The law
//
// A [Limiter] spaces departures at its rate (a pacer, not a bucket that
// can owe tokens) and moves that rate by a law built from three known ones:
//
//   - From BBR: the server's limit is estimated from what the server
//     accepted, never from what this client sent. Accepted requests are
//     counted per 100ms over the last second of unpaused traffic, and the
//     count is trusted only when the server was saturated (a tenth or more
//     of that second's answers were 429): then what it accepted is its
//     capacity, whatever its shape (token bucket with any burst, fixed
//     window). A client that was slow (CPU starvation, GC, scheduling)
//     sends less and gets fewer 429s, so its slowness never reads as the
//     server's limit, and a measured limit is never lowered by a 429 that
//     found the server unsaturated.
//   - From the AWS SDKs' adaptive retry mode and TCP CUBIC: after a
//     decrease the rate holds at a margin under the measured limit, then
//     probes above it on a cubic curve (flat first, steep later), so a
//     server that raised its limit is found within seconds, and a probe
//     that is refused costs one round of 429s. Unlike the SDKs, the rate
//     after a 429 is the margin times the measured limit, not the measured
//     send rate times 0.7, which would ratchet down on every episode.
//   - From Netflix's concurrency-limits (AIMD) applied to the margin: a 429
//     at or under the measured limit (a collision of jittered requests at
//     a strict bucket) widens the margin by a point; a 429 only above the
//     limit (a probe) narrows it by a point. The margin settles where the
//     server's jitter tolerance is.
//
// Before a second of evidence exists, a 429 cuts the rate to what the
// server accepted since the previous cut (after a 429 the server's bucket
// is empty, so that is its rate whatever its burst), or to half when there
// is no such measure, and the rate then doubles each second until the next
// 429 (TCP's slow start): a handful of early 429s cost a fraction of a
// second, never the run.
//
// Several 429s answering requests that left before a cut took effect make
// one episode and cut once. Retry-After is honoured for the whole pool,
// like Google SRE's client-side throttling, only when the server is
// refusing everything (a run of 429s and nothing accepted for a while);
// a 429 among accepted requests is a collision at the edge of the limit,
// answered by the lower rate, since Retry-After's whole seconds would idle
// the pool far longer than a per-request bucket needs.
//
// The law's state is [State]: a few numbers, so that a fleet sharing one
// budget can keep it in one database row. The per-100ms counts are this
// process's evidence, not state.
//
// Waiting here never counts as a row's attempt. A Limiter is safe for
// concurrent use. It reads the clock through Config.Now and sleeps on the
// time package's timers, so tests run it under testing/synctest.
package ratelimit
