package importer

import "sync"

// elsewhereKeys are the keys of the rows of a fleet import's file that
// another import had queued already (plan.go): that import's to finish,
// counted Pending. An import that works the target's chunks itself until
// none is open may end them all the same; the keys let its summary count
// them as the ledger has them in the end (QueuedElsewhere). They cost the
// memory of the keys, only for such rows.
type elsewhereKeys struct {
	mu   sync.Mutex
	keys []string
}

// noteQueuedElsewhere counts the row under key as queued by another import.
func (im *Importer) noteQueuedElsewhere(key string) {
	im.counts.queuedElsewhere.Add(1)
	im.elsewhere.mu.Lock()
	im.elsewhere.keys = append(im.elsewhere.keys, key)
	im.elsewhere.mu.Unlock()
}

// QueuedElsewhere returns the keys of the rows the import found queued by
// another import, and counted Pending. Call it once the import has ended.
func (im *Importer) QueuedElsewhere() []string {
	im.elsewhere.mu.Lock()
	defer im.elsewhere.mu.Unlock()
	return im.elsewhere.keys
}
