package importer

import (
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// TestDecide covers the rules of resume and conflict without a store or a
// server: a row, what the store holds of its keys, what this batch plans.
func TestDecide(t *testing.T) {
	t.Parallel()
	byEmail := Row{Line: 7, Email: "Ana@Example.com", Type: ripio.Individual, Key: "email:ana@example.com"}
	byID := Row{Line: 8, Email: "Ana@Example.com", Type: ripio.Individual, CustomerID: "p1", Key: "id:p1"}
	derived := CustomerIDFor(byEmail.Email)
	fp := func(r Row) string {
		if r.CustomerID == "" {
			r.CustomerID = CustomerIDFor(r.Email)
		}
		return r.fingerprint()
	}
	prior := func(st row.Status, mod func(*ledger.Prior)) *ledger.Prior {
		p := &ledger.Prior{Status: st, Email: "ana@example.com", Type: string(ripio.Individual), SourceFile: "old.csv", SourceLine: 3}
		if mod != nil {
			mod(p)
		}
		return p
	}
	tests := []struct {
		name    string
		row     Row
		known   known
		planned *plannedRow
		retry   bool
		hold    bool // the target assigns its own ids
		want    action
		wantID  string // for actSend
		reason  string // a part of the reason
		message string // for actRefuseInDoubt
	}{
		{name: "NewRowIsSentUnderTheIdOfItsEmail", row: byEmail, want: actSend, wantID: derived},
		{name: "NewRowKeyedByIdIsSentUnderItsId", row: byID, want: actSend, wantID: "p1"},
		{name: "CreatedBeforeIsSkipped", row: byEmail, known: known{own: prior(row.Created, nil)}, want: actSkip},
		{name: "ExistingBeforeIsSkipped", row: byEmail, known: known{own: prior(row.Exists, nil)}, want: actSkip},
		{name: "DoneWithAnotherTypeIsRefused", row: byEmail,
			known: known{own: prior(row.Created, func(p *ledger.Prior) { p.Type = string(ripio.Business) })},
			want:  actRefuse, reason: "f.csv:7: conflict: already created as BUSINESS ana@example.com (from old.csv:3); not sent"},
		{name: "DoneUnderTheIdWithAnotherEmailIsRefused", row: byID,
			known: known{own: prior(row.Created, func(p *ledger.Prior) { p.Email = "bob@example.com" })},
			want:  actRefuse, reason: "already created as INDIVIDUAL bob@example.com"},
		{name: "DoneUnderTheIdWithTheEmailFoldedIsSkipped", row: byID,
			known: known{own: prior(row.Created, func(p *ledger.Prior) { p.Email = "ANA@EXAMPLE.COM" })}, want: actSkip},
		{name: "DoneUnderTheIdWithTheEmailFoldedBeyondASCIIIsSkipped",
			row:   Row{Line: 8, Email: "STRASSE@example.com", Type: ripio.Individual, CustomerID: "p1", Key: "id:p1"},
			known: known{own: prior(row.Created, func(p *ledger.Prior) { p.Email = "straße@example.com" })}, want: actSkip},
		{name: "InDoubtUnderTheIdWithAnotherEmailIsRefused", row: byID,
			known: known{own: prior(row.InDoubt, func(p *ledger.Prior) { p.Email = "alice@example.com" })},
			want:  actRefuse, reason: "f.csv:8: conflict: customerId p1 already in_doubt as INDIVIDUAL alice@example.com (from old.csv:3); not sent"},
		{name: "InDoubtWithAnotherTypeIsRefused", row: byEmail,
			known: known{own: prior(row.InDoubt, func(p *ledger.Prior) { p.Type = string(ripio.Business) })},
			want:  actRefuse, reason: "already in_doubt as BUSINESS"},
		{name: "FailedUnderTheIdWithAnotherEmailGivesWay", row: byID,
			known: known{own: prior(row.Failed, func(p *ledger.Prior) { p.Email = "alice@example.com" })}, want: actSend, wantID: "p1"},
		{name: "RejectedWithAnotherTypeGivesWay", row: byEmail,
			known: known{own: prior(row.Rejected, func(p *ledger.Prior) { p.Type = string(ripio.Business) })}, want: actSend, wantID: derived},
		{name: "SameKindCreatedUnderAnotherIdRefuses", row: byID,
			known: known{others: []ledger.Prior{*prior(row.Created, func(p *ledger.Prior) { p.CustomerIDSent = "p0" })}},
			want:  actRefuse, reason: "ana@example.com already created with customerId p0 (from old.csv:3); not sent under customerId p1"},
		{name: "SameKindInFlightUnderAnotherIdRefuses", row: byID,
			known: known{others: []ledger.Prior{*prior(row.InFlight, func(p *ledger.Prior) { p.CustomerIDSent = "p0" })}},
			want:  actRefuse, reason: "to be sent in this run with customerId p0"},
		{name: "ItsOwnRowFoundByEmailIsNoConflict", row: byID,
			known: known{own: prior(row.InDoubt, func(p *ledger.Prior) { p.CustomerIDSent = "p1" }),
				others: []ledger.Prior{*prior(row.InDoubt, func(p *ledger.Prior) { p.CustomerIDSent = "p1" })}},
			want: actSend, wantID: "p1"},
		{name: "TheHolderMostSurelyExistingIsNamed", row: byID,
			known: known{others: []ledger.Prior{
				*prior(row.InDoubt, func(p *ledger.Prior) { p.CustomerIDSent = "p0" }),
				*prior(row.Exists, func(p *ledger.Prior) { p.CustomerIDSent = "p2" })}},
			want: actRefuse, reason: "already exists with customerId p2"},
		{name: "LegacyKeyDoneIsSkipped", row: Row{Line: 7, Email: "Straße@example.com", Type: ripio.Individual, Key: "email:strasse@example.com"},
			known: known{legacy: prior(row.Created, func(p *ledger.Prior) { p.Email, p.CustomerIDSent = "straße@example.com", "old-id" })}, want: actSkip},
		{name: "LegacyKeyDoneWithAnotherTypeIsRefused", row: Row{Line: 7, Email: "Straße@example.com", Type: ripio.Business, Key: "email:strasse@example.com"},
			known: known{legacy: prior(row.Created, func(p *ledger.Prior) { p.Email, p.CustomerIDSent = "straße@example.com", "old-id" })},
			want:  actRefuse, reason: "already created as INDIVIDUAL straße@example.com"},
		{name: "LegacyKeyInDoubtRefuses", row: Row{Line: 7, Email: "Straße@example.com", Type: ripio.Individual, Key: "email:strasse@example.com"},
			known: known{legacy: prior(row.InDoubt, func(p *ledger.Prior) { p.Email, p.CustomerIDSent = "straße@example.com", "old-id" })},
			want:  actRefuse, reason: "already in_doubt with customerId old-id"},
		{name: "LegacyKeyFailedIsNoConflict", row: Row{Line: 7, Email: "Straße@example.com", Type: ripio.Individual, Key: "email:strasse@example.com"},
			known: known{legacy: prior(row.Failed, func(p *ledger.Prior) { p.Email, p.CustomerIDSent = "straße@example.com", "old-id" })},
			want:  actSend, wantID: CustomerIDFor("Straße@example.com")},
		{name: "InDoubtAtATargetThatAssignsIDsIsHeld", row: byEmail, hold: true,
			known: known{own: prior(row.InDoubt, func(p *ledger.Prior) { p.Message = "timeout" })}, want: actHoldInDoubt,
			message: "timeout" + heldMark + "not sent again: the target assigns its own customer ids, so a second send may create a second customer; " +
				"check Ana@Example.com in Ripio, then re-run with --resend-in-doubt to send it"},
		{name: "HeldAgainKeepsOneReason", row: byID, hold: true,
			known: known{own: prior(row.InDoubt, func(p *ledger.Prior) { p.Message = heldMessage("timeout", "Ana@Example.com") })},
			want:  actHoldInDoubt, message: heldMessage("timeout", "Ana@Example.com")},
		{name: "FailedAtATargetThatAssignsIDsIsSent", row: byEmail, hold: true,
			known: known{own: prior(row.Failed, nil)}, want: actSend, wantID: derived},
		{name: "NewRowAtATargetThatAssignsIDsIsSent", row: byID, hold: true, want: actSend, wantID: "p1"},
		{name: "FailedIsSentAgain", row: byEmail, known: known{own: prior(row.Failed, nil)}, want: actSend, wantID: derived},
		{name: "InDoubtIsSentAgain", row: byEmail, known: known{own: prior(row.InDoubt, nil)}, want: actSend, wantID: derived},
		{name: "RejectedUnchangedIsNotSent", row: byEmail,
			known: known{own: prior(row.Rejected, func(p *ledger.Prior) { p.Fingerprint = fp(byEmail) })}, want: actSkipRejected},
		{name: "RejectedChangedIsSent", row: byEmail,
			known: known{own: prior(row.Rejected, func(p *ledger.Prior) { p.Fingerprint = "other" })}, want: actSend, wantID: derived},
		{name: "RejectedUnchangedIsSentWhenForced", row: byEmail, retry: true,
			known: known{own: prior(row.Rejected, func(p *ledger.Prior) { p.Fingerprint = fp(byEmail) })}, want: actSend, wantID: derived},
		{name: "OtherKindCreatedUnderAnotherIdRefusesANewRow", row: byEmail,
			known: known{others: []ledger.Prior{*prior(row.Created, func(p *ledger.Prior) { p.CustomerIDSent = "p1" })}},
			want:  actRefuse, reason: "conflict: ana@example.com already created with customerId p1 (from old.csv:3); not sent (the same person: to send this row as that customer, give it customerId p1, or drop it)"},
		{name: "OtherKindUnderTheSameIdIsNoConflict", row: byID,
			known: known{others: []ledger.Prior{*prior(row.Created, func(p *ledger.Prior) { p.CustomerIDSent = "p1" })}}, want: actSend, wantID: "p1"},
		{name: "OtherKindThatCreatedNothingIsNoConflict", row: byEmail,
			known: known{others: []ledger.Prior{*prior(row.Failed, func(p *ledger.Prior) { p.CustomerIDSent = "p1" })}}, want: actSend, wantID: derived},
		{name: "OtherKindInFlightIsToBeSentInThisRun", row: byID,
			known: known{others: []ledger.Prior{*prior(row.InFlight, func(p *ledger.Prior) { p.CustomerIDSent = derived })}},
			want:  actRefuse, reason: "to be sent in this run with customerId " + derived},
		{name: "OtherKindPlannedInThisBatchRefuses", row: byID,
			planned: &plannedRow{email: "ana@example.com", customerID: derived, line: 2},
			want:    actRefuse, reason: "f.csv:8: conflict: ana@example.com to be sent in this run with customerId " + derived + " (from f.csv:2); not sent under customerId p1"},
		{name: "SameKindPlannedInThisBatchUnderAnotherIdRefuses", row: byID,
			planned: &plannedRow{email: "ana@example.com", customerID: "p2", line: 2},
			want:    actRefuse, reason: "f.csv:8: conflict: ana@example.com to be sent in this run with customerId p2 (from f.csv:2); not sent under customerId p1"},
		{name: "ConflictOfARowInDoubtKeepsItWithTheReasonInItsMessage", row: byEmail,
			known: known{own: prior(row.InDoubt, func(p *ledger.Prior) { p.Message = "timeout" + refusedMark + "an older conflict" }),
				others: []ledger.Prior{*prior(row.Created, func(p *ledger.Prior) { p.CustomerIDSent = "p1" })}},
			want: actRefuseInDoubt, reason: "already created with customerId p1"},
		{name: "ConflictOfAFailedRowReplacesIt", row: byEmail,
			known: known{own: prior(row.Failed, nil), others: []ledger.Prior{*prior(row.Created, func(p *ledger.Prior) { p.CustomerIDSent = "p1" })}},
			want:  actRefuseReplace, reason: "already created with customerId p1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := decide(tt.row, tt.known, tt.planned, rules{sourceFile: "f.csv", retryRejected: tt.retry, holdInDoubt: tt.hold})
			if d.action != tt.want {
				t.Fatalf("decide(%s) action = %d (%q), want %d", tt.row.Key, d.action, d.reason, tt.want)
			}
			if tt.want == actSend && d.customerID != tt.wantID {
				t.Errorf("decide(%s) customerID = %q, want %q", tt.row.Key, d.customerID, tt.wantID)
			}
			if !strings.Contains(d.reason, tt.reason) {
				t.Errorf("decide(%s) reason = %q, want it to contain %q", tt.row.Key, d.reason, tt.reason)
			}
			if tt.want == actHoldInDoubt && d.message != tt.message {
				t.Errorf("decide(%s) message = %q, want %q", tt.row.Key, d.message, tt.message)
			}
			if tt.want == actRefuseInDoubt {
				if want := "timeout" + refusedMark + d.reason; d.message != want {
					t.Errorf("decide(%s) message = %q, want %q (the row's own message, the last refusal replaced)", tt.row.Key, d.message, want)
				}
			}
		})
	}
}
