package importer

import (
	"context"
	"strings"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// A target that assigns its own customer ids ignores the customerId sent,
// so it never answers "already exists" to a second create of one person: a
// row whose outcome is unknown, sent again, may become a second customer.
// Once an answer shows it (ripio.Customer.AssignedID), the store remembers
// it for the target, and rows in doubt there, from this run or an earlier
// one, are held: kept in_doubt, not sent, until the operator, having
// checked those people in Ripio, asks for them with Config.ResendInDoubt.

// assignsIDsWarning is said once, when an answer first shows it.
const assignsIDsWarning = "this target assigns its own customer ids and ignores the ones sent: " +
	"a row in doubt sent again could create a second customer, so rows in doubt are no longer sent again " +
	"automatically; check them in Ripio, then re-run with --resend-in-doubt to send them"

// heldMark separates a held row's own message from why it is held.
const heldMark = " | held: "

// noteAssignedID records, at the first answer that carries an id of the
// server's own, that the target assigns its ids, and says so once.
func (im *Importer) noteAssignedID(ctx context.Context, cust ripio.Customer) error {
	if cust.AssignedID == "" || !im.assignsIDs.CompareAndSwap(false, true) {
		return nil
	}
	im.cfg.Logger.Warn(assignsIDsWarning)
	return im.run.RecordAssignsIDs(context.WithoutCancel(ctx))
}

// noteOwnID notes that the target keeps the customerIds sent (a create
// answered with ours, or "already exists"), and records it for later runs
// the first time: from then on a row whose answer was lost may be sent
// again, since the server would answer "already exists" rather than create
// the person twice. Until an answer shows it, in this run or an earlier
// one, a row in doubt is not sent again (keepsIDsNow): at a target that
// assigns its own ids a second send may be a second customer, and the
// first answer that would show it is lost like the others.
func (im *Importer) noteOwnID(ctx context.Context, v ripio.Verdict, cust ripio.Customer) error {
	if v.Outcome != ripio.Exists && !cust.IDKept || !im.ownIDs.CompareAndSwap(false, true) {
		return nil
	}
	return im.run.RecordKeepsIDs(context.WithoutCancel(ctx))
}

// keepsIDsNow reports whether the target was seen to keep the customerIds
// sent, by this run or an earlier one. A Work process asks the store too:
// another process of the fleet may have recorded it since its start. A
// store that cannot say leaves it unknown.
func (im *Importer) keepsIDsNow(ctx context.Context) bool {
	if im.ownIDs.Load() {
		return true
	}
	if _, working := im.run.(Worker); !working {
		return false
	}
	keeps, err := im.store.KeepsIDs(ctx, im.target)
	if err == nil && keeps {
		im.ownIDs.Store(true)
	}
	return keeps
}

// holdsInDoubt reports whether rows in doubt are kept from being sent again.
func (im *Importer) holdsInDoubt() bool {
	return im.assignsIDs.Load() && !im.cfg.ResendInDoubt
}

// holdsInDoubtNow is holdsInDoubt for a row in doubt about to be sent
// again. A Work process asks the store too: another process of the fleet
// may have recorded since its last claim that the target assigns its ids.
// A store that cannot say holds the row.
func (im *Importer) holdsInDoubtNow(ctx context.Context) bool {
	if im.holdsInDoubt() {
		return true
	}
	if _, working := im.run.(Worker); !working || im.cfg.ResendInDoubt {
		return false
	}
	assigns, err := im.store.AssignsIDs(ctx, im.target)
	if err != nil {
		return true
	}
	if assigns {
		im.assignsIDs.Store(true)
	}
	return assigns
}

// heldMessage is the message of a row held in doubt: its own (msg, without
// an earlier hold's reason), and what the operator is to do.
func heldMessage(msg, email string) string {
	msg, _, _ = strings.Cut(msg, heldMark)
	return msg + heldMark + "not sent again: the target assigns its own customer ids, so a second send may create a second customer; " +
		"check " + email + " in Ripio, then re-run with --resend-in-doubt to send it"
}

// heldUntilKnownMessage is the message of a row in doubt not sent again
// because no answer has yet shown that the target keeps the ids sent.
func heldUntilKnownMessage(msg, email string) string {
	msg, _, _ = strings.Cut(msg, heldMark)
	return msg + heldMark + "not sent again yet: no answer from this target has shown that it keeps the customerIds sent " +
		"(then a second send is answered \"already exists\"), and at one that assigns its own ids a second send may create a second customer; " +
		"a run that gets such an answer sends it, or check " + email + " in Ripio, then re-run with --resend-in-doubt"
}

// twiceMessage is the message of a row created by the send that found the
// target assigns its own ids, whose earlier send was in doubt.
func twiceMessage(email, id string) string {
	return "created as " + id + " when sent alone to find out whether the target keeps the customerIds sent; it does not, " +
		"and the earlier send of this row, in doubt, may have created another customer: check " + email + " in Ripio"
}
