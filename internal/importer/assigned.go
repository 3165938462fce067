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
// answered with ours, or "already exists"): from then on a row whose answer
// was lost may be sent again in the same run, since the server would
// answer "already exists" rather than create the person twice. Until then
// it ends in doubt, for the next run, which knows the target better.
func (im *Importer) noteOwnID(v ripio.Verdict, cust ripio.Customer) {
	if v.Outcome == ripio.Exists || cust.IDKept {
		im.ownIDs.Store(true)
	}
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
