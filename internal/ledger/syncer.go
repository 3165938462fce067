package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// syncRequest asks the syncer to make the first changes commits durable,
// then to tell waiters.
type syncRequest struct {
	changes uint64
	waiters []chan error
}

// syncLoop makes commits durable for those who wait: it fsyncs the log
// once for every request queued meanwhile, and not at all when no commit
// changed the ledger since its last fsync (a Flush with nothing new).
func (w *writer) syncLoop() {
	var synced uint64 // the changes the last fsync covered
	var reqs []syncRequest
	for req := range w.toSync {
		reqs = append(reqs[:0], req)
	more:
		for {
			select {
			case req, ok := <-w.toSync:
				if !ok {
					break more
				}
				reqs = append(reqs, req)
			default:
				break more
			}
		}
		need := reqs[len(reqs)-1].changes // requests come in commit order
		err := w.failed()
		if err == nil && need > synced {
			if err = w.syncWAL(); err != nil {
				err = fmt.Errorf("ledger: write: sync: %w", err)
				w.fail(err)
			} else {
				synced = need
			}
		}
		for _, r := range reqs {
			for _, c := range r.waiters {
				c <- err
			}
		}
	}
}

// openLog sets conn up for the writer, with synchronous=NORMAL (the
// syncer makes commits durable; SQLite only writes them), and opens the log
// SQLite writes for it: the log of file, the ledger's file as SQLite
// resolved it (a symlinked ledger's log sits by the real file). One
// descriptor for the writer's life: its fsync reports every writeback
// error since it was opened, even one that another descriptor saw first
// (SQLite's autocheckpoint drops its own).
func openLog(ctx context.Context, conn *sql.Conn) (file string, wal *os.File, err error) {
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		return "", nil, err
	}
	var seq int
	var name string
	if err := conn.QueryRowContext(ctx, "PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		return "", nil, err
	}
	// A read: the connection opens (creates) the log, and keeps it while
	// it is open.
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master").Scan(&n); err != nil {
		return "", nil, err
	}
	wal, err = os.OpenFile(file+"-wal", os.O_RDWR, 0)
	return file, wal, err
}
