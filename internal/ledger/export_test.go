package ledger

// SetSyncLog stands f in for the writer's fsync of the log; f gets the real
// one. Call it before the ledger's first write after Open. For the
// importer's tests of durability, which live in package ledger_test.
func SetSyncLog(l *Ledger, f func(sync func() error) error) {
	sync := l.w.syncWAL
	l.w.syncWAL = func() error { return f(sync) }
}
