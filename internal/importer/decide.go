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
)

// known is what the store holds of a row's keys.
type known struct {
	// own is the row under the row's own key; nil when the store has none.
	own *ledger.Prior
	// other is a row of the other kind of key with the row's email (keyed
	// by email for a row keyed by customerId, and the reverse); nil when
	// there is none.
	other *ledger.Prior
}

// plannedRow is a row this run has planned to send and has not yet marked:
// the store cannot know it yet.
type plannedRow struct {
	idKeyed    bool // keyed by a customerId column, not by its email
	email      string
	customerID string
	line       int
}

// rules are the run's settings that the decision depends on.
type rules struct {
	sourceFile    string
	retryRejected bool
}

// decision is what decide says to do with a row.
type decision struct {
	action action
	// customerID is the customerId to send: the row's own, or the one
	// derived from its email.
	customerID string
	// reason says why a refused row is not sent.
	reason string
	// message is, for actRefuseInDoubt, the row's new message in the store:
	// its own, with reason replacing the refusal an earlier run added.
	message string
}

// refusedMark separates a row's own message from the conflict that refused
// it last.
const refusedMark = " | refused: "

// decide applies the rules of resume and conflict to row. planned is the
// first row of this batch planned to be sent with row's email, if any. It
// reads nothing and writes nothing.
func decide(r Row, k known, planned *plannedRow, opt rules) decision {
	idKeyed := keyKind(r.Key) == "customerId"
	own := k.own
	if own != nil && own.Status.Done() {
		if own.Type != string(r.Type) || (idKeyed && !strings.EqualFold(own.Email, r.Email)) {
			return decision{action: actRefuse, reason: fmt.Sprintf("%s:%d: conflict: already %s as %s %s (from %s:%d); not sent",
				opt.sourceFile, r.Line, own.Status, own.Type, own.Email, own.SourceFile, own.SourceLine)}
		}
		return decision{action: actSkip}
	}
	csvCustomerID := r.CustomerID
	if r.CustomerID == "" {
		r.CustomerID = CustomerIDFor(r.Email)
	}
	if own != nil && own.Status == row.Rejected && !opt.retryRejected && own.Fingerprint == r.fingerprint() {
		return decision{action: actSkipRejected}
	}
	// Rows keyed by a customerId column and rows keyed by email meet by
	// email: a row whose person a row of the other kind created, may have
	// created, or is about to, under another customerId is not sent, or the
	// same person could get two customers.
	o, found := otherHolder(k.other, planned, idKeyed, opt.sourceFile)
	if !found || o.customerID == r.CustomerID {
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

// holder is the row of the other kind of key that holds, or is about to
// hold, a row's email.
type holder struct {
	what       string // "already created", "to be sent in this run", ...
	email      string
	customerID string
	file       string
	line       int
}

// otherHolder picks the row of the other kind with row's email: the store's,
// if it may have created its customer, else the one this batch plans to send.
func otherHolder(stored *ledger.Prior, planned *plannedRow, idKeyed bool, sourceFile string) (holder, bool) {
	if stored != nil && stored.Status.MayExist() {
		what := "already " + string(stored.Status)
		if stored.Status == row.InFlight {
			what = "to be sent in this run"
		}
		return holder{what: what, email: stored.Email, customerID: stored.CustomerIDSent, file: stored.SourceFile, line: stored.SourceLine}, true
	}
	if planned != nil && planned.idKeyed != idKeyed {
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
