// Package ratelimit paces the whole worker pool against one API budget
// that the server does not announce.
//
// # The pacer
//
// A [Limiter] spaces departures at its rate: a pacer that keeps one slot
// ahead, not a bucket that can owe tokens, so a decrease takes effect at
// the next request. While the server has never throttled, each slot
// follows from the slot that was due, and up to a second of a late
// waiter's lateness is made up by the departures after it, so a stalled
// process does not lower a fixed rate. Once it has throttled, lateness is
// lost, never made up: at a token bucket of burst 1 the server takes a
// request only if it comes a whole interval after the one before, and a
// departure that left early to catch up would follow a late one closer
// than that. How evenly requests reach the server decides how close to a
// strict bucket's limit the pool can hold, so the end of each wait is
// left to the moment the request goes: [Limiter.Reserve] returns up to
// 1.5ms before the slot, with the rest of the wait, which the caller's
// request runs once it is built (ripio.CreateCustomerRequest.Leave), and
// which marks when it really left, for the slots reserved after it.
// Building a request, the importer's checks and a busy machine's
// scheduling thus fall before the slot (when they take less than the
// lead), not between the slot and the wire: at a 100/s bucket of burst 1
// a pool paced at 99/s was refused 6-7% of its requests when they left
// from Wait and 0.5-2% with Reserve (BENCHMARKS.md, command G2). A pause
// that begins meanwhile holds the reservations after it, not that one: its
// rest is at most the lead, on the request's own context. That rest is
// slept with the OS's nanosleep where there is one (Linux): the runtime's
// timers wake up to a millisecond late, nanosleep about a tenth of that.
// Only a slot due with nobody waiting is idle time, which saves up
// Burst-1 slots.
//
// # The law
//
// The law targets a small share of 429s rather than a margin under a
// measured limit: a 429 costs only the request it refuses (a refused
// request does not spend the server's token), while every point of margin
// costs a point of the budget for the whole run. It is built from these
// known ones:
//
//   - From the AIMD of Netflix's concurrency-limits and TCP, applied to
//     the rate: each 429 that opens an episode steps the rate down by 1%
//     (plus a quarter of the share of 429s among the last second's
//     answers), and between 429s the rate creeps up by 0.003% per request
//     it sends. The rate settles where 429s are about 0.3% of requests,
//     which at a strict bucket is just under its limit, however much
//     jitter the client's machine adds: the more jitter, the lower it
//     settles. Gradient2's reading of latency does not apply: a rate limit
//     refuses, it does not queue.
//   - From the AWS SDKs' adaptive retry mode and TCP CUBIC: a rate that
//     met no 429 for 3s probes above itself on a cubic (flat first, steep
//     later: it adds the whole limit 6s later), so a server that raised
//     its limit is found within seconds, and a probe past the limit costs
//     the few 429s that step it back. Unlike the SDKs, the rate does not
//     step down from the send rate the client measured: a client that
//     sent less than its rate (CPU starvation, GC, workers asleep on a
//     throttled row's Retry-After) would ratchet it down.
//   - From BBR: the limit is estimated from what the server accepted,
//     never from what this client failed to send. While the server is not
//     saturated, it took about what it was sent; the limit is then the
//     highest rate that met a 429 (what the client really sent, if that
//     was less), and 429s never take the rate under 90% of it. A slow or
//     jittery client, whose evenly paced requests reach the server
//     bunched, is thus not read as the limit. The server is saturated
//     when a tenth or more of the last second's answers are 429s, spread
//     over four of its ten 100ms slots at least (a stall of the client's
//     machine refuses a burst in one or two), or when 429s clumped with
//     creates are too many (below), or, where the limit was measured
//     when it refused everything (below), when a twentieth or more of
//     the last three seconds' answers are 429s, found in each of the
//     three (a window measured over its allowance refuses the last few
//     of each second's requests in one slot, and need not close again):
//     it is refusing what it cannot take.
//     The limit is then no more than what it accepted in that second (its
//     capacity, whatever its shape: a token bucket of any burst, a fixed
//     window; unless the client sent clearly less than its rate), and the
//     rate steps down without the floor, so a drop of the limit is
//     followed within a second or two. (A burst-1 bucket just over its
//     limit takes every other request, so the limit so read may be half
//     the server's; the next cut of an unsaturated server raises it.)
//
// Until a limit is known the rate is the ceiling. The first 429 cuts it
// to the ceiling times the share of the answers the server accepted, and
// 429s while the rate holds after a cut cut it again to what the server
// accepted per second since the start; 250ms after a cut the rate doubles
// every second (TCP's slow start) until a 429 meets it, and the rate that
// met it is the limit. A server that refuses everything before any limit
// is known (a fixed window, closed) gives it at once: what it accepted
// since the start, per second over a second at least. That first count may
// hold the end of one window and the whole next, so when such a server
// closes again within 2.5s, having opened between, it opens and closes on
// a clock, and what it accepted in the last second is its window: the
// limit drops to it. A limit measured otherwise is kept (a bucket that
// refused everything twice, or four times, was not a window: that second
// held the outage and the client's pace under the limit), but for the
// rate that grew past the limit at the start, when the server closes
// within 2.5s of that and twice more so: a rate that grows past a window
// in the run's first second may read it as up to twice its allowance, and
// then meets it closed every second.
//
// A 429 answered in one clump with an accepted request (answers each
// within a quarter of the interval of the one before, in either order) is
// a collision the client caused, and no evidence at all: a starved machine
// delivers evenly paced requests bunched, and a strict bucket takes one of
// each bunch whatever its limit. 429s are therefore judged when their
// clump is over. But not once the clumps that held such 429s are a
// quarter or more of a second's answers, in four of its slots at least:
// a stall bunches many requests into one clump, however many of them the
// server refuses, while a server over its limit whose creates take about
// an interval longer than its 429s brings each 429 back with the create
// sent before it, a clump for every other answer (at 10/s, creates 100ms
// slower). Taken for collisions, those 429s left the pool over the limit
// with half its requests refused; they are now the limit's, and the
// server saturated.
//
// Several 429s answering requests that left before a cut make one episode
// and cut once, unless they make the server saturated when the cut found
// it was not.
//
// Retry-After is honoured for the whole pool, like the client-side
// throttling of Google's SRE book, only when the server refuses
// everything (eight 429s in a row and nothing accepted for 100ms): a 429
// among accepted requests is a collision at the edge of the limit,
// answered by the lower rate, because Retry-After's whole seconds would
// idle the pool far longer than a per-request bucket needs. The SRE
// book's probabilistic dropping is not used: with the pacer holding the
// rate, a request the client drops is a request the budget loses.
//
// The law's state is [State]: five numbers, small enough for a fleet that
// shares one budget to keep in one database row. The per-100ms counts and
// the clump of answers being judged are this process's evidence, not state.
//
// Waiting here never counts as a row's attempt. A Limiter is safe for
// concurrent use. It reads the clock through Config.Now and sleeps on the
// time package's timers, so tests run it under testing/synctest (a clock
// that does not move during a first, one-microsecond nanosleep is taken
// for a test's: no wait is then left to nanosleep).
package ratelimit
