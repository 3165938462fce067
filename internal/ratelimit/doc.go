// Package ratelimit paces the whole worker pool against one API budget
// that the server does not announce.
//
// # The law
//
// A [Limiter] spaces departures at its rate: a pacer that keeps one slot
// ahead, not a bucket that can owe tokens, so a decrease takes effect at
// the next request. Each slot follows from the slot that was due, not from
// when a waiter woke: the timer and scheduling lateness of a busy machine
// is made up by the departures after it (up to 50ms once the server has
// throttled, since a longer clump would only collide at a strict bucket;
// up to a second while it never has, so a stalled process does not lower
// a fixed rate). Only a slot due with nobody waiting is idle time. The rate
// follows a law built from three known ones:
//
//   - From BBR: the server's limit is estimated from what the server
//     accepted, never from what this client sent. Answers are counted per
//     100ms over the last second, and what the server accepted in it is
//     taken as its limit only when the server was saturated (a tenth or
//     more of the second's answers, and five at least, were 429): then it
//     took what it could, whatever its shape (a token bucket with any
//     burst, a fixed window). Only saturation lowers the measured limit, so
//     429s that meet an unsaturated server (jittered requests colliding at
//     a strict bucket) never ratchet it down, and a client that was slow
//     (CPU starvation, GC, scheduling) and sent less than its rate has its
//     429s ignored: its slowness is not read as the server's limit.
//   - From the AWS SDKs' adaptive retry mode and TCP CUBIC: after a
//     decrease the rate holds at a margin under the measured limit, then
//     probes above it on a cubic curve (flat first, steep later), so a
//     server that raised its limit is found within seconds, and a refused
//     probe costs one round of 429s and raises the limit to the rate that
//     met them. Unlike the SDKs, a 429 sets the rate to the margin times
//     the measured limit, not to 0.7 times the measured send rate, which
//     ratchets down on every episode.
//   - From the AIMD of Netflix's concurrency-limits, applied to the margin:
//     a 429 while the rate holds under the limit lowers the margin by a
//     point, three when a twentieth of the second's answers (five at
//     least) were 429, down to 0.90, without moving the probe's clock; a
//     refused probe raises it by a point, up to 0.99. The margin settles
//     where the server's tolerance of the client's jitter is.
//
// Before a second of evidence exists, a 429 cuts the rate to what the
// server accepted since the previous cut (after a 429 the server's bucket
// is empty, so that is its rate whatever its burst), or to half when there
// is no such measure, and the rate doubles each second after a second
// without 429s (TCP's slow start): early 429s cost a fraction of a second,
// never the run.
//
// A 429 answered in one clump with an accepted request (answers each
// within a quarter of the interval of the one before, in either order) is
// a collision the client caused, and no evidence at all: a starved machine
// delivers evenly paced requests bunched, and a strict bucket takes one of
// each bunch whatever its limit, so reading those 429s as saturation
// ratchets the measured limit down. 429s are therefore judged when their
// clump is over; paced answers come about an interval apart, so a clump is
// the machine's doing, never the server's pace.
//
// Several 429s answering requests that left before a cut make one episode
// and cut once. Retry-After is honoured for the whole pool, like the
// client-side throttling of Google's SRE book, only when the server
// refuses everything (eight 429s in a row and nothing accepted for 100ms):
// a 429 among accepted requests is a collision at the edge of the limit,
// answered by the lower rate, because Retry-After's whole seconds would
// idle the pool far longer than a per-request bucket needs.
//
// The law's state is [State]: five numbers, small enough for a fleet that
// shares one budget to keep in one database row. The per-100ms counts and
// the clump of answers being judged are this process's evidence, not state.
//
// Waiting here never counts as a row's attempt. A Limiter is safe for
// concurrent use. It reads the clock through Config.Now and sleeps on the
// time package's timers, so tests run it under testing/synctest.
package ratelimit
