package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ledgerTarget is a target a ledger holds rows or runs of.
type ledgerTarget struct {
	Target string `json:"target"`
	Rows   int    `json:"rows"`
	Runs   int    `json:"runs"`
}

// ledgerTargets lists the targets of the ledger at path, by name. The
// ledger's API reads one target at a time; this reads its targets table as
// the README's sqlite3 examples do, on a read-only connection of its own.
func ledgerTargets(ctx context.Context, path string) ([]ledgerTarget, error) {
	if isPostgres(path) {
		return nil, errors.New("listing targets reads SQLite ledgers only")
	}
	db, err := sql.Open("sqlite3", readOnlyDSN(path))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `
		SELECT t.name,
			(SELECT COUNT(*) FROM rows r WHERE r.target_id = t.id) + (SELECT COUNT(*) FROM line_issues i WHERE i.target_id = t.id),
			(SELECT COUNT(*) FROM runs u WHERE u.target_id = t.id)
		FROM targets t ORDER BY t.name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ts []ledgerTarget
	for rows.Next() {
		var t ledgerTarget
		if err := rows.Scan(&t.Target, &t.Rows, &t.Runs); err != nil {
			return nil, err
		}
		if t.Rows+t.Runs > 0 {
			ts = append(ts, t)
		}
	}
	return ts, rows.Err()
}

// selectTarget is the ledger's name of the target report and failures
// read: the --target flag's, else the one the environment selects for
// import. --target takes a name as report prints it, or a base URL (or
// sandbox / production) that only one of the ledger's targets has.
func (tf *targetFlags) selectTarget(ctx context.Context, e env, path string) (string, error) {
	if tf.name == "" {
		tgt, err := tf.resolve(e, false)
		if err != nil {
			return "", err
		}
		return tgt.Name(), nil
	}
	ts, err := ledgerTargets(ctx, path)
	if err != nil {
		return "", fmt.Errorf("--target: read the ledger's targets: %w", err)
	}
	want := strings.TrimSpace(tf.name)
	if u, ok := knownTargets[strings.ToLower(want)]; ok {
		want = u
	}
	want = strings.TrimRight(want, "/")
	if canon, err := canonicalURL(want); err == nil && strings.Contains(want, "://") {
		want = canon
	}
	var matches []string
	for _, t := range ts {
		if t.Target == tf.name {
			return t.Target, nil
		}
		if base, _, _ := strings.Cut(t.Target, " client="); base == want {
			matches = append(matches, t.Target)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", fmt.Errorf("--target %q: the ledger holds no such target; it holds %s", tf.name, targetList(ts))
	}
	return "", fmt.Errorf("--target %q: several clients of it in the ledger; name one: %s", tf.name, targetList(ts))
}

// targetList names targets for a one-line message.
func targetList(ts []ledgerTarget) string {
	if len(ts) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q (%s)", t.Target, plural(int64(t.Rows), "row"))
	}
	return b.String()
}

// otherTargets returns the targets of the ledger but target, when target
// has nothing in it: the environment may select another target than the
// one the operator imported into.
func otherTargets(ctx context.Context, path, target string, rows, runs int) []ledgerTarget {
	if rows+runs > 0 {
		return nil
	}
	ts, err := ledgerTargets(ctx, path)
	if err != nil {
		return nil
	}
	var others []ledgerTarget
	for _, t := range ts {
		if t.Target != target {
			others = append(others, t)
		}
	}
	return others
}

// warnOtherTargets says which targets hold the rows when the selected one
// holds none.
func warnOtherTargets(w io.Writer, target string, others []ledgerTarget) {
	if len(others) == 0 {
		return
	}
	fmt.Fprintf(w, "bulkcreate: target %q has no rows in this ledger; it holds %s: select one with --target\n",
		target, targetList(others))
}
