package postgres

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
)

// The SQL a commit sends: writes of a kind gathered into one statement over
// arrays, and the few that have no array form.

// buildBatch turns ops into statements, in order. Consecutive ops of a
// kind that has an array form share one statement, until a row comes back
// a second time: one statement cannot upsert a row twice, and an UPDATE
// joined to two of a row's values applies one of them at random.
func buildBatch(b *pgx.Batch, ops []writeOp) {
	var g group
	for i := range ops {
		op := &ops[i]
		switch op.kind {
		case opFlush:
		case opMark:
			for _, s := range op.sends {
				g.mark(b, op, s)
			}
		case opRecord:
			g.record(b, op)
		case opLineIssue:
			g.lineIssue(b, op.targetID, op.runID, op.issue)
		case opClearLineIssue:
			g.clearLineIssue(b, op.targetID, op.issue.SourceFile, op.issue.SourceLine)
		default:
			g.flush(b)
			queueSingle(b, op)
		}
	}
	g.flush(b)
}

// group gathers the columns of one array statement.
type group struct {
	kind opKind
	seen map[groupKey]struct{}

	target, run                      []int64
	key, email, typ, cid, file, fp   []string
	folded, status, custID, message  []string
	line, httpStatus, errCode        []int32
	rawEmail, rawType, rawCustomerID [][]byte
}

type groupKey struct {
	target int64
	key    string
	line   int
}

// join readies g for an op of kind on k: it sends what g holds first when
// it holds another kind, or k already.
func (g *group) join(b *pgx.Batch, kind opKind, k groupKey) {
	if g.kind != kind {
		g.flush(b)
		g.kind = kind
	} else if _, dup := g.seen[k]; dup {
		g.flush(b)
		g.kind = kind
	}
	if g.seen == nil {
		g.seen = map[groupKey]struct{}{}
	}
	g.seen[k] = struct{}{}
}

func (g *group) mark(b *pgx.Batch, op *writeOp, s ledger.Send) {
	g.join(b, opMark, groupKey{target: op.targetID, key: s.Key})
	g.target = append(g.target, op.targetID)
	g.run = append(g.run, op.runID)
	g.key = append(g.key, s.Key)
	g.email = append(g.email, s.Email)
	g.typ = append(g.typ, s.Type)
	g.cid = append(g.cid, s.CustomerID)
	g.file = append(g.file, s.SourceFile)
	g.line = append(g.line, int32(s.SourceLine))
	g.fp = append(g.fp, s.Fingerprint)
	g.folded = append(g.folded, s.FoldedEmail)
}

func (g *group) record(b *pgx.Batch, op *writeOp) {
	o := op.outcome
	g.join(b, opRecord, groupKey{target: op.targetID, key: o.Key})
	g.target = append(g.target, op.targetID)
	g.key = append(g.key, o.Key)
	g.status = append(g.status, string(o.Status))
	g.custID = append(g.custID, o.CustomerID)
	g.httpStatus = append(g.httpStatus, int32(o.HTTPStatus))
	g.errCode = append(g.errCode, int32(o.ErrorCode))
	g.message = append(g.message, clean(o.Message))
}

func (g *group) lineIssue(b *pgx.Batch, targetID, runID int64, li ledger.LineIssue) {
	g.join(b, opLineIssue, groupKey{target: targetID, key: li.SourceFile, line: li.SourceLine})
	g.target = append(g.target, targetID)
	g.run = append(g.run, runID)
	g.file = append(g.file, li.SourceFile)
	g.line = append(g.line, int32(li.SourceLine))
	g.status = append(g.status, string(li.Status))
	g.rawEmail = append(g.rawEmail, []byte(li.Email))
	g.rawType = append(g.rawType, []byte(li.Type))
	g.rawCustomerID = append(g.rawCustomerID, []byte(li.CustomerID))
	g.message = append(g.message, clean(li.Reason))
}

func (g *group) clearLineIssue(b *pgx.Batch, targetID int64, file string, line int) {
	g.join(b, opClearLineIssue, groupKey{target: targetID, key: file, line: line})
	g.target = append(g.target, targetID)
	g.file = append(g.file, file)
	g.line = append(g.line, int32(line))
}

// flush queues the statement for what g holds, and empties g.
func (g *group) flush(b *pgx.Batch) {
	switch {
	case len(g.target) == 0:
	case g.kind == opMark:
		b.Queue(markSQL, g.target, g.key, g.email, g.typ, g.cid, g.file, g.line, g.fp, g.folded, g.run)
	case g.kind == opRecord:
		b.Queue(recordSQL, g.target, g.key, g.status, g.custID, g.httpStatus, g.errCode, g.message)
	case g.kind == opLineIssue:
		b.Queue(lineIssueSQL, g.target, g.file, g.line, g.status, g.rawEmail, g.rawType, g.rawCustomerID, g.message, g.run)
	case g.kind == opClearLineIssue:
		b.Queue(clearLineIssueSQL, g.target, g.file, g.line)
	}
	// New slices, not truncated ones: the batch holds these until it runs.
	*g = group{}
}

// markSQL marks rows in flight: new rows are inserted, known rows take the
// send's fields and count an attempt; their outcome's columns stay until
// Record writes new ones.
const markSQL = `INSERT INTO rows AS r (target_id, row_key, email, type, customer_id_sent, status, attempts,
		source_file, source_line, fingerprint, folded_email, first_run, last_run, created_at, updated_at)
	SELECT t, k, e, ty, c, 'in_flight', 1, f, l, fp, fe, run, run, now(), now()
	FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::integer[],
		$8::text[], $9::text[], $10::bigint[]) AS u (t, k, e, ty, c, f, l, fp, fe, run)
	ON CONFLICT (target_id, row_key) DO UPDATE SET
		email = excluded.email, type = excluded.type, customer_id_sent = excluded.customer_id_sent,
		folded_email = excluded.folded_email,
		status = excluded.status, attempts = r.attempts + 1,
		source_file = excluded.source_file, source_line = excluded.source_line,
		fingerprint = excluded.fingerprint, last_run = excluded.last_run, updated_at = excluded.updated_at`

// recordSQL writes outcomes. The customer id the server returned replaces
// the row's only when there is one.
const recordSQL = `UPDATE rows AS r SET status = u.st,
		customer_id = CASE WHEN u.cid <> '' THEN u.cid ELSE r.customer_id END,
		http_status = u.hs, error_code = u.ec, error_message = u.msg, updated_at = now()
	FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::integer[], $7::text[])
		AS u (t, k, st, cid, hs, ec, msg)
	WHERE r.target_id = u.t AND r.row_key = u.k`

const lineIssueSQL = `INSERT INTO line_issues (target_id, source_file, source_line, status, email, type, customer_id,
		reason, run_id, updated_at)
	SELECT t, f, l, st, e, ty, c, re, run, now()
	FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::bytea[], $6::bytea[], $7::bytea[],
		$8::text[], $9::bigint[]) AS u (t, f, l, st, e, ty, c, re, run)
	ON CONFLICT (target_id, source_file, source_line) DO UPDATE SET
		status = excluded.status, email = excluded.email, type = excluded.type, customer_id = excluded.customer_id,
		reason = excluded.reason, run_id = excluded.run_id, updated_at = excluded.updated_at`

const clearLineIssueSQL = `DELETE FROM line_issues AS li
	USING unnest($1::bigint[], $2::text[], $3::integer[]) AS u (t, f, l)
	WHERE li.target_id = u.t AND li.source_file = u.f AND li.source_line = u.l`

// queueSingle queues the statements of an op without an array form: rare
// writes, one statement or two each, in the same round trip as the rest.
func queueSingle(b *pgx.Batch, op *writeOp) {
	switch op.kind {
	case opRelease:
		if op.prior == nil {
			b.Queue(`DELETE FROM rows WHERE target_id = $1 AND row_key = $2 AND status = 'in_flight'`, op.targetID, op.key)
			return
		}
		// MarkInFlight wrote this run's row over the prior one; all of it
		// goes back (see ledger.Run.Release for why).
		p := op.prior
		b.Queue(`UPDATE rows SET status = $1, email = $2, type = $3, customer_id_sent = $4, customer_id = $5,
				fingerprint = $6, source_file = $7, source_line = $8, attempts = $9, folded_email = $10,
				last_run = CASE WHEN $11::bigint > 0 THEN $11::bigint ELSE last_run END, updated_at = now()
			WHERE target_id = $12 AND row_key = $13 AND status = 'in_flight'`,
			string(p.Status), p.Email, p.Type, p.CustomerIDSent, p.CustomerID, p.Fingerprint, p.SourceFile,
			int32(p.SourceLine), int32(p.Attempts), p.FoldedEmail, p.LastRun, op.targetID, op.key)
	case opSetMessage:
		b.Queue(`UPDATE rows SET error_message = $1, last_run = $2, updated_at = now() WHERE target_id = $3 AND row_key = $4`,
			clean(op.message), op.runID, op.targetID, op.key)
	case opReplace:
		b.Queue(`DELETE FROM rows WHERE target_id = $1 AND row_key = $2`, op.targetID, op.key)
		var g group
		g.lineIssue(b, op.targetID, op.runID, op.issue)
		g.flush(b)
	case opFinish:
		if op.end.ReadWholeFile {
			b.Queue(`DELETE FROM line_issues WHERE target_id = $1 AND source_file = $2 AND run_id < $3`,
				op.targetID, op.end.SourceFile, op.runID)
		}
		b.Queue(`UPDATE runs SET ended_at = now(), outcome = $1, counts = $2 WHERE id = $3`,
			op.end.Outcome, string(op.endCounts), op.runID)
	case opQueue, opLoaded, opChunkEnd:
		queueFleet(b, op)
	case opAssignsIDs:
		b.Queue(`UPDATE targets SET assigns_ids_since = now() WHERE id = $1 AND assigns_ids_since IS NULL`, op.targetID)
	case opKeepsIDs:
		b.Queue(`UPDATE targets SET keeps_ids_since = now() WHERE id = $1 AND keeps_ids_since IS NULL`, op.targetID)
	default:
		panic(fmt.Sprintf("postgres: write of unknown kind %d", op.kind))
	}
}

// clean makes a message storable as PostgreSQL text, which holds neither
// NUL nor invalid UTF-8: those become U+FFFD. A message is for people; the
// fields of a row are kept as they were (see line_issues).
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
