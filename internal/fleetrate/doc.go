// Package fleetrate paces one process of a fleet that sends to one target
// under one rate budget, kept in the PostgreSQL ledger (package
// ledger/postgres, Reserve and Publish). A [Pacer] implements the
// importer's Pacer.
//
// # The protocol
//
// The budget is one row per target: the fleet's ceiling (import --rps),
// the adaptive law's state (package ratelimit's State) and a GCRA
// schedule: the time of the next free departure slot. A process whose
// pool wants to send reserves a few slots with one UPDATE: the first is
// the latest of the next free slot, the database's now and the end of a
// pause, and the schedule moves on by n slots at the rate in force. It
// takes about 20ms of slots at a time (4 at most, 1 at low rates; with no
// rate at all, 64 at one instant, which only count its share), so a
// process that dies wastes a few slots at most, and as it holds no share
// of its own, the others take what it no longer reserves at their next
// reservation: there is no static split to rebalance. A slot taken later
// than its interval (5 ms at least) after it is dropped, not sent: it
// would meet the next process's at the server.
//
// Slots are on the database's clock, the one clock every process reads:
// the statement returns them with the database's now, and the process
// maps them to its monotonic clock by the midpoint of the round trip of
// the statement that had the shortest lately, so a slow answer on a
// loaded machine does not shift them. Machines' clocks never meet.
//
// The rate in force is computed by the reserving process from the law's
// state as it last read it, and the statement reserves nothing unless
// that state is still the row's (its version): a process that reserved
// from an older state reads the new one and reserves again.
//
// The law runs in each process (a ratelimit.Limiter used for its law
// only), on that process's evidence, at its share of the fleet's slots
// over the last second: the rate and limit it holds are the fleet's times
// that share. When a 429 (or a pause) changes its state, the process
// publishes it, divided by its share, before its next reservation; every
// other process adopts it at its next reservation, so one process's 429
// slows the whole fleet within a few slots. Writers converge: a change
// is written when the writer had read the row as it is, or when its
// decrease is newer than the row's; a pause is only ever extended.
//
// A process's own Config.Rate caps that process alone, by spacing its
// reservations; it never changes the fleet's schedule.
package fleetrate
