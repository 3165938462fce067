package postgres

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestLookup_ProbesTheIndexKeyByKey: with the statistics of a fresh
// ledger (none: autovacuum has not yet analyzed the rows a load queued),
// a lookup of a batch of keys, or of emails, reaches the rows table only
// by index probes on the key it asks for, never by a scan of every row of
// the target filtered by key.
func TestLookup_ProbesTheIndexKeyByKey(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "a.csv")
	for c := range 60 {
		if err := r.Queue(t.Context(), chunkOf("a.csv", 2+c*256, 256)); err != nil {
			t.Fatal(err)
		}
	}
	keys := make([]string, 256)
	for i := range keys {
		keys[i] = fmt.Sprintf("a.csv-%d", 5000+i)
	}
	for name, query := range map[string]string{"Lookup": lookupSQL, "LookupByEmail": lookupByEmailSQL} {
		rows, err := l.pool.Query(t.Context(), "EXPLAIN "+query, r.targetID, keys)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if strings.Contains(plan, "ANY") || !strings.Contains(plan, "Index Cond: ((target_id = ") {
			t.Errorf("%s's plan on an unanalyzed table:\n%s\nwant index probes per key, no filter by ANY", name, plan)
		}
	}
}

// TestRun_QueueAheadIsSeenAfterQueueSync: rows queued ahead are committed
// in order and a lookup sees them once QueueSync returns; TargetEmpty
// tells a target without rows from one with some.
func TestRun_QueueAheadIsSeenAfterQueueSync(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	r := startRun(t, l, targetA, "a.csv")
	if empty, err := r.TargetEmpty(t.Context()); err != nil || !empty {
		t.Fatalf("TargetEmpty() of a new target = %v, %v; want true", empty, err)
	}
	var keys []string
	for c := range 4 {
		ss := chunkOf("a.csv", 2+c*100, 100)
		if err := r.QueueAhead(t.Context(), ss); err != nil {
			t.Fatalf("QueueAhead() = %v", err)
		}
		keys = append(keys, ss[0].Key, ss[99].Key)
	}
	if err := r.QueueSync(t.Context()); err != nil {
		t.Fatalf("QueueSync() = %v", err)
	}
	if got := lookup(t, l, targetA, keys...); len(got) != len(keys) {
		t.Errorf("after QueueSync, Lookup found %d of %d rows queued ahead", len(got), len(keys))
	}
	// Each write is a chunk of its own, in order, its rows queued.
	rows, err := l.pool.Query(t.Context(), `SELECT min(r.source_line), count(*), bool_and(r.status = 'queued' AND r.first_run = $1)
		FROM chunks c JOIN rows r ON r.chunk_id = c.id WHERE c.run_id = $1 GROUP BY c.id ORDER BY c.id`, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var first, n int
	var queued bool
	if _, err := pgx.ForEachRow(rows, []any{&first, &n, &queued}, func() error {
		got = append(got, fmt.Sprintf("%d+%d %v", first, n, queued))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"2+100 true", "102+100 true", "202+100 true", "302+100 true"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("chunks of the run (first line+rows, queued) = %v, want %v", got, want)
	}
	if empty, err := r.TargetEmpty(t.Context()); err != nil || empty {
		t.Errorf("TargetEmpty() with rows = %v, %v; want false", empty, err)
	}
}
