package importer

import (
	"fmt"
	"strings"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// The rules of resume and conflict, in one pure function: what to do with a
// valid row, given what the store holds of its keys and what this run has
// planned to send. The store only records what the plan decides.

// action is what the plan does with a row.
type action int

const (
	actSend         action = iota // mark it in flight and send it
	actSkip                       // done in an earlier run: nothing to do
	actSkipRejected               // refused by the server before, unchanged: not sent again
	actRefuse                     // a conflict: recorded as an invalid line issue
	// A conflict, for a row the store holds that may have created its
	// customer: it stays in doubt, the reason added to its message.
	actRefuseInDoubt
	// A conflict, for a row the store holds that created nothing (failed,
	// rejected): its record gives way to an invalid line issue.
	actRefuseReplace
	// In doubt at a target that assigns its own ids: sent again, it may be
	// created twice. It stays in doubt, not sent, why in its message.
	actHoldInDoubt
)

// known is what the store holds of a row's keys.
type known struct {
	// own is the row under the row's own key; nil when the store has none.
	own *ledger.Prior
	// legacy, for a row keyed by email, is the row an older version keyed
	// by its email lower-cased (strings.ToLower, not foldEmail), when that
	// key differs from the row's; nil when there is none.
	legacy *ledger.Prior
	// others are the other rows that hold the row's email under another
	// key: of the other kind of key, or keyed by another customerId. The
	// row's own may be among them.
	others []ledger.Prior
}

// plannedRow is a row this run has planned to send and has not yet marked:
// the store cannot know it yet.
type plannedRow struct {
	email      string
	customerID string
	line       int
}

// rules are the run's settings that the decision depends on.
type rules struct {
	sourceFile    string
	retryRejected bool
	// holdInDoubt: the target assigns its own ids, and the operator did not
	// ask for rows in doubt to be sent again.
	holdInDoubt bool
}

// decision is what decide says to do with a row.
type decision struct {
	action action
	// customerID is the customerId to send: the row's own, or the one
	// derived from its email.
	customerID string
	// reason says why a refused row is not sent.
	reason string
	// message is, for actRefuseInDoubt and actHoldInDoubt, the row's new
	// message in the store: its own, with reason replacing the refusal or
	// hold an earlier run added.
	message string
}

// refusedMark separates a row's own message from the conflict that refused
// it last.
const refusedMark = " | refused: "

// decide applies the rules of resume and conflict to row. planned is the
// first row of this batch planned to be sent with row's email, if any. It
// reads nothing and writes nothing.
func decide(r Row, k known, planned *plannedRow, opt rules) decision {
	own := k.own
	if own == nil && k.legacy != nil && k.legacy.Status.Done() {
		own = k.legacy // done by an older version, under its key of then
	}
	// A key names one person: a row that may have created its customer is
	// not taken over by a row of another email or type, or the server's
	// "already exists" would be recorded as that other person's.
	if own != nil && own.Status.MayExist() && !samePerson(*own, r) {
		return decision{action: actRefuse, reason: ownConflict(r, *own, opt.sourceFile)}
	}
	if own != nil && own.Status.Done() {
		return decision{action: actSkip}
	}
	csvCustomerID := r.CustomerID
	if r.CustomerID == "" {
		r.CustomerID = CustomerIDFor(r.Email)
	}
	if own != nil && own.Status == row.Rejected && !opt.retryRejected && own.Fingerprint == r.fingerprint() {
		return decision{action: actSkipRejected}
	}
	// An email names one person too: a row whose person another row
	// created, may have created, or is about to, under another customerId
	// is not sent, or the same person could get two customers.
	o, found := holderOf(r, k, planned, opt.sourceFile)
	if !found && own != nil && own.Status.MayExist() && opt.holdInDoubt {
		return decision{action: actHoldInDoubt, message: heldMessage(own.Message, r.Email)}
	}
	if !found {
		return decision{action: actSend, customerID: r.CustomerID}
	}
	reason := conflictReason(r, csvCustomerID, o, opt.sourceFile)
	switch {
	case own == nil:
		return decision{action: actRefuse, reason: reason}
	case own.Status.MayExist():
		msg, _, _ := strings.Cut(own.Message, refusedMark)
		return decision{action: actRefuseInDoubt, reason: reason, message: msg + refusedMark + reason}
	default:
		return decision{action: actRefuseReplace, reason: reason}
	}
}

// samePerson reports whether row r is the person p holds: the same email,
// as foldEmail compares them, and the same type.
func samePerson(p ledger.Prior, r Row) bool {
	return p.Type == string(r.Type) && foldEmail(p.Email) == foldEmail(r.Email)
}

func ownConflict(r Row, own ledger.Prior, sourceFile string) string {
	what := "already"
	if keyKind(r.Key) == "customerId" {
		what = "customerId " + r.CustomerID + " already"
	}
	reason := fmt.Sprintf("%s:%d: conflict: %s %s as %s %s (from %s:%d); not sent",
		sourceFile, r.Line, what, own.Status, own.Type, own.Email, own.SourceFile, own.SourceLine)
	if !own.Status.Done() {
		reason += " (that customer may exist: check it in Ripio; a customerId and an email each name one person)"
	}
	return reason
}

// holder is a row that holds, or is about to hold, a row's email under
// another customerId.
type holder struct {
	what       string // "already created", "to be sent in this run", ...
	email      string
	customerID string
	file       string
	line       int
}

// holderOf picks the row that holds r's email under another customerId:
// of the store's, the one whose customer most surely exists, else the one
// this batch plans to send.
func holderOf(r Row, k known, planned *plannedRow, sourceFile string) (holder, bool) {
	var best *ledger.Prior
	consider := func(p *ledger.Prior) {
		if p != nil && p.Status.MayExist() && p.CustomerIDSent != r.CustomerID &&
			(best == nil || !best.Status.Done() && p.Status.Done()) {
			best = p
		}
	}
	for i := range k.others {
		consider(&k.others[i])
	}
	consider(k.legacy)
	if best != nil {
		what := "already " + string(best.Status)
		if best.Status == row.InFlight {
			what = "to be sent in this run"
		}
		return holder{what: what, email: best.Email, customerID: best.CustomerIDSent, file: best.SourceFile, line: best.SourceLine}, true
	}
	if planned != nil && planned.customerID != r.CustomerID {
		return holder{what: "to be sent in this run", email: planned.email, customerID: planned.customerID, file: sourceFile, line: planned.line}, true
	}
	return holder{}, false
}

func conflictReason(r Row, csvCustomerID string, o holder, sourceFile string) string {
	what := o.what
	if o.customerID != "" {
		what += " with customerId " + o.customerID
	}
	reason := fmt.Sprintf("%s:%d: conflict: %s %s (from %s:%d); not sent", sourceFile, r.Line, o.email, what, o.file, o.line)
	if csvCustomerID != "" {
		reason += " under customerId " + csvCustomerID
	}
	if o.customerID != "" {
		reason += fmt.Sprintf(" (the same person: to send this row as that customer, give it customerId %s, or drop it)", o.customerID)
	}
	return reason
}
