package importer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger/memstore"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// idAssigner is a server that makes a customer, under an id of its own, of
// every create it gets, and whose first answers are lost.
type idAssigner struct {
	lose int // answers lost, from the first
	mu   sync.Mutex
	made map[string]int // customers made, by email
	n    int
}

func (s *idAssigner) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.made[req.Email]++
	if s.n <= s.lose {
		return ripio.Customer{}, &ripio.TransportError{Op: "create customer", Sent: true, Err: fmt.Errorf("connection reset")}
	}
	id := fmt.Sprintf("srv-%d", s.n)
	return ripio.Customer{CustomerID: id, Email: req.Email, Type: req.Type, AssignedID: id}, nil
}

// TestImport_LostAnswersAreNotSentAgainBeforeTheTargetKeepsOurIDs: while no
// answer has shown that the target keeps the customerIds sent, a row whose
// answer was lost is not sent again in the run: at a server that assigns
// its own ids, the second send would be a second customer.
func TestImport_LostAnswersAreNotSentAgainBeforeTheTargetKeepsOurIDs(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 3, made: map[string]int{}}
	data, emails := genCSV(10, "own")
	im := importer.New(importer.Config{SourceFile: "own.csv", Concurrency: 1, Backoff: 1}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	sum, err := im.Import(t.Context(), strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range emails {
		if srv.made[e] > 1 {
			t.Errorf("%s: %d customers made, want at most 1", e, srv.made[e])
		}
	}
	if sum.InDoubt != 3 || sum.Created != 7 || !sum.AssignsIDs {
		t.Errorf("summary: in doubt %d, created %d, assigns ids %v; want 3, 7, true", sum.InDoubt, sum.Created, sum.AssignsIDs)
	}
}

// TestImport_RowsInDoubtQueuedBeforeTheFirstAnswerAreHeld: rows in doubt
// from a run whose answers were all lost are held as soon as the next run's
// first answer shows that the target assigns its own ids, even those
// already planned and waiting for the pacer.
func TestImport_RowsInDoubtQueuedBeforeTheFirstAnswerAreHeld(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 10, made: map[string]int{}}
	store := memoryStore{memstore.New()}
	data, emails := genCSV(10, "queued")
	for run := range 2 {
		im := importer.New(importer.Config{SourceFile: "q.csv", Concurrency: 1, Backoff: 1}, srv, freePacer{}, store, "t")
		sum, err := im.Import(t.Context(), strings.NewReader(data))
		if err != nil {
			t.Fatalf("import %d: %v", run+1, err)
		}
		if run == 0 && sum.InDoubt != 10 {
			t.Fatalf("import 1: in doubt %d, want 10 (every answer lost)", sum.InDoubt)
		}
	}
	twice := 0
	for _, e := range emails {
		if srv.made[e] > 1 {
			twice++
		}
	}
	if twice > 1 {
		t.Errorf("%d people sent twice, want at most 1 (the row whose answer showed the server's ids)", twice)
	}
}

// TestImport_AnswersWithoutAnIDDoNotShowTheTargetKeepsOurs: answers that
// name no customerId say nothing of how the target treats ids, so a lost
// answer is still not sent again in the run.
func TestImport_AnswersWithoutAnIDDoNotShowTheTargetKeepsOurs(t *testing.T) {
	t.Parallel()
	srv := &idKeeper{lost: func(n int) bool { return n == 3 }, silent: true, calls: map[string]int{}}
	data, emails := genCSV(5, "silent")
	im := importer.New(importer.Config{SourceFile: "s.csv", Concurrency: 1, Backoff: 1}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	if _, err := im.Import(t.Context(), strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if n := srv.calls[emails[2]]; n != 1 {
		t.Errorf("the row whose answer was lost was sent %d times, want 1", n)
	}
}

// idKeeper keeps the customerIds sent and answers with them, or, silent,
// names no id in its answers (as far as anyone can tell it keeps them);
// the answers for which lost says so are lost (n counts its calls from 1).
type idKeeper struct {
	lost   func(n int) bool
	silent bool
	mu     sync.Mutex
	n      int
	calls  map[string]int
}

func (s *idKeeper) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.calls[req.Email]++
	if s.lost != nil && s.lost(s.n) {
		return ripio.Customer{}, &ripio.TransportError{Op: "create customer", Sent: true, Err: fmt.Errorf("connection reset")}
	}
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type, IDKept: !s.silent}, nil
}

// TestImport_RowsInDoubtWaitForTheAnswersOfRowsSentFirst: rows in doubt
// from a run whose answers were all lost, first in the file, are sent
// after the rows never sent, whose answers show what the target does with
// ids: at one that assigns its own they are held, and nobody is made
// twice.
func TestImport_RowsInDoubtWaitForTheAnswersOfRowsSentFirst(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 5, made: map[string]int{}}
	store := memoryStore{memstore.New()}
	lost, lostEmails := genCSV(5, "lost")
	fresh, _ := genCSV(20, "fresh")
	allInDoubt(t, srv, store, importer.Config{SourceFile: "f.csv", Concurrency: 1, Backoff: 1}, lost, 5)
	both := lost + fresh[strings.Index(fresh, "\n")+1:] // the rows in doubt first, then 20 never sent
	im := importer.New(importer.Config{SourceFile: "f.csv", Concurrency: 1, Backoff: 1}, srv, freePacer{}, store, "t")
	sum, err := im.Import(t.Context(), strings.NewReader(both))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range lostEmails {
		if srv.made[e] > 1 {
			t.Errorf("%s, in doubt: %d customers made, want 1", e, srv.made[e])
		}
	}
	if sum.Created != 20 || sum.InDoubt != 5 || sum.Held != 5 {
		t.Errorf("import 2: created %d, in doubt %d, held %d; want 20, 5, 5", sum.Created, sum.InDoubt, sum.Held)
	}
}

// TestImport_RowsInDoubtAreSentOnceAnAnswerShowsTheTargetKeepsOurIDs: at a
// target that keeps the ids sent, rows in doubt from a run whose answers
// were all lost are sent again once the answers to rows never sent show
// it, or, when the file holds no such row, once the answer to one of them
// alone does: the run ends with every row done.
func TestImport_RowsInDoubtAreSentOnceAnAnswerShowsTheTargetKeepsOurIDs(t *testing.T) {
	t.Parallel()
	for _, withFresh := range []bool{true, false} {
		t.Run(fmt.Sprintf("withRowsNeverSent=%v", withFresh), func(t *testing.T) {
			t.Parallel()
			srv := &idKeeper{lost: func(n int) bool { return n <= 5 }, calls: map[string]int{}}
			store := memoryStore{memstore.New()}
			lost, lostEmails := genCSV(5, "lost")
			allInDoubt(t, srv, store, importer.Config{SourceFile: "f.csv", Concurrency: 2, Backoff: 1}, lost, 5)
			file, want := lost, int64(5)
			if withFresh {
				fresh, _ := genCSV(20, "fresh")
				file, want = lost+fresh[strings.Index(fresh, "\n")+1:], 25
			}
			im := importer.New(importer.Config{SourceFile: "f.csv", Concurrency: 2, Backoff: 1}, srv, freePacer{}, store, "t")
			sum, err := im.Import(t.Context(), strings.NewReader(file))
			if err != nil {
				t.Fatal(err)
			}
			if sum.Created+sum.Exists != want || sum.InDoubt != 0 || !sum.KeepsIDs {
				t.Errorf("import 2: %+v, keeps ids %v; want %d done, none in doubt, keeps ids", sum.Counts, sum.KeepsIDs, want)
			}
			for _, e := range lostEmails {
				if srv.calls[e] != 2 {
					t.Errorf("%s, in doubt: sent %d times in all, want 2", e, srv.calls[e])
				}
			}
		})
	}
}

// TestImport_ATargetSeenToKeepOurIDsIsRememberedAcrossRuns: once an answer
// has shown that the target keeps the ids sent, a later run sends its rows
// in doubt again at once, and sends again one whose answer is lost, as the
// run that learned it would have: every row ends done.
func TestImport_ATargetSeenToKeepOurIDsIsRememberedAcrossRuns(t *testing.T) {
	t.Parallel()
	store := memoryStore{memstore.New()}
	data, _ := genCSV(10, "kept")
	// Run 1: the first 5 answers come, the last 5 are lost, one attempt a row.
	srv := &idKeeper{lost: func(n int) bool { return n > 5 }, calls: map[string]int{}}
	im := importer.New(importer.Config{SourceFile: "k.csv", Concurrency: 1, MaxAttempts: 1, Backoff: 1}, srv, freePacer{}, store, "t")
	if sum, err := im.Import(t.Context(), strings.NewReader(data)); err != nil || sum.Created != 5 || sum.InDoubt != 5 {
		t.Fatalf("import 1: %+v, %v; want 5 created, 5 in doubt", sum.Counts, err)
	}
	// Run 2: the first answer is lost; the row goes again.
	srv = &idKeeper{lost: func(n int) bool { return n == 1 }, calls: map[string]int{}}
	im = importer.New(importer.Config{SourceFile: "k.csv", Concurrency: 1, MaxAttempts: 2, Backoff: 1}, srv, freePacer{}, store, "t")
	sum, err := im.Import(t.Context(), strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created+sum.Exists != 5 || sum.InDoubt != 0 {
		t.Errorf("import 2: %+v; want the 5 rows in doubt done", sum.Counts)
	}
}

// TestImport_ARunWhoseFileFailsMidwaySendsNoProbe: rows in doubt kept back
// for the answers of rows never sent that follow them in the file are not
// sent, nor one alone to find out, when the file cannot be read to its
// end: the run aborts with the read error, and the re-run of the mended
// file learns the target from its new rows.
func TestImport_ARunWhoseFileFailsMidwaySendsNoProbe(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 300, made: map[string]int{}}
	store := memoryStore{memstore.New()}
	lost, lostEmails := genCSV(300, "lost") // more than a batch: a batch cut by a read error is not planned
	cfg := importer.Config{SourceFile: "f.csv", Concurrency: 1, Backoff: 1, Stop: importer.StopConfig{BreakerRequests: -1, BreakerWindow: -1}}
	allInDoubt(t, srv, store, cfg, lost, 300)
	fresh, _ := genCSV(20, "fresh")
	broken := io.MultiReader(strings.NewReader(lost), errReader{errors.New("read f.csv: input/output error")},
		strings.NewReader(fresh[strings.Index(fresh, "\n")+1:]))
	im := importer.New(cfg, srv, freePacer{}, store, "t")
	sum, err := im.Import(t.Context(), broken)
	if err == nil {
		t.Fatalf("import 2: no error; want the read error")
	}
	for _, e := range lostEmails {
		if srv.made[e] > 1 {
			t.Errorf("%s, in doubt: %d customers made by a run that could not read its file, want 1", e, srv.made[e])
		}
	}
	if sum.Requests != 0 {
		t.Errorf("import 2 (aborted, file not read to its end): %d requests, want 0", sum.Requests)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestImport_NoProbeWhenTheFileHadRowsNeverSent: a row in doubt is sent
// alone to find out only when the run sent no other row; here the run's 5
// new rows lose their answers too, nothing is known, and the rows in
// doubt are held, not probed.
func TestImport_NoProbeWhenTheFileHadRowsNeverSent(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 10, made: map[string]int{}} // run 1's 5 answers, then run 2's 5 new rows'
	store := memoryStore{memstore.New()}
	lost, lostEmails := genCSV(5, "lost")
	allInDoubt(t, srv, store, importer.Config{SourceFile: "f.csv", Concurrency: 1, Backoff: 1}, lost, 5)
	fresh, _ := genCSV(5, "fresh")
	im := importer.New(importer.Config{SourceFile: "f.csv", Concurrency: 1, Backoff: 1}, srv, freePacer{}, store, "t")
	sum, err := im.Import(t.Context(), strings.NewReader(lost+fresh[strings.Index(fresh, "\n")+1:]))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range lostEmails {
		if srv.made[e] > 1 {
			t.Errorf("%s, in doubt: %d customers made, want 1 (the run sent new rows: no probe)", e, srv.made[e])
		}
	}
	if sum.HeldUntilKnown != 5 {
		t.Errorf("import 2: %d rows held until the target is known, want 5", sum.HeldUntilKnown)
	}
}

// TestImport_ARowSentAloneToAnIDAssigningTargetIsFlagged: the row in
// doubt sent alone to find out, whose answer shows that the target assigns
// its own ids, is created with a message telling to check that person,
// and the summary names its line.
func TestImport_ARowSentAloneToAnIDAssigningTargetIsFlagged(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 4, made: map[string]int{}}
	store := memoryStore{memstore.New()}
	data, emails := genCSV(4, "alone")
	allInDoubt(t, srv, store, importer.Config{SourceFile: "a.csv", Concurrency: 1, Backoff: 1}, data, 4)
	im := importer.New(importer.Config{SourceFile: "a.csv", Concurrency: 1, Backoff: 1}, srv, freePacer{}, store, "t")
	sum, err := im.Import(t.Context(), strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created != 1 || sum.Held != 3 || !sum.ProbeTwice || sum.ProbeLine != 2 {
		t.Errorf("import 2: created %d, held %d, probe twice %v on line %d; want 1, 3, true, line 2", sum.Created, sum.Held, sum.ProbeTwice, sum.ProbeLine)
	}
	key := "email:" + emails[0]
	got, err := store.Lookup(t.Context(), "t", []string{key})
	if err != nil {
		t.Fatal(err)
	}
	if p := got[key]; p.Status != "created" || !strings.Contains(p.Message, "check "+emails[0]+" in Ripio") {
		t.Errorf("the row sent alone: %s, %q; want created, telling to check the person in Ripio", p.Status, p.Message)
	}
}

// TestImport_MarkExistingClosesRowsInDoubtAndSendsNothing: rows in doubt
// that the operator found in Ripio are recorded exists by an import with
// MarkExisting, which sends nothing and leaves the file's other rows as
// they were: a later import skips them, and holds the rest as before.
func TestImport_MarkExistingClosesRowsInDoubtAndSendsNothing(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 4, made: map[string]int{}}
	store := memoryStore{memstore.New()}
	data, emails := genCSV(4, "found")
	allInDoubt(t, srv, store, importer.Config{SourceFile: "a.csv", Concurrency: 1, Backoff: 1}, data, 4)
	lines := strings.SplitAfter(data, "\n")
	found := lines[0] + lines[1] + lines[2] // the header and the first two rows
	im := importer.New(importer.Config{SourceFile: "found.csv", MarkExisting: true}, srv, freePacer{}, store, "t")
	sum, err := im.Import(t.Context(), strings.NewReader(found))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Exists != 2 || sum.Requests != 0 || srv.n != 4 {
		t.Errorf("import --mark-existing: exists %d, %d requests (server saw %d in all); want 2 exists, none sent (4 in all)", sum.Exists, sum.Requests, srv.n)
	}
	got, err := store.Lookup(t.Context(), "t", []string{"email:" + emails[0], "email:" + emails[2]})
	if err != nil {
		t.Fatal(err)
	}
	if p := got["email:"+emails[0]]; p.Status != "exists" || !strings.Contains(p.Message, "--mark-existing") {
		t.Errorf("a row marked existing: %s, %q; want exists, saying how", p.Status, p.Message)
	}
	if p := got["email:"+emails[2]]; p.Status != "in_doubt" {
		t.Errorf("a row in doubt not in the file: %s; want in_doubt as it was", p.Status)
	}
	// The file grown by a row whose answer shows the server's ids: a later
	// import skips the two marked and holds the other two.
	more, _ := genCSV(1, "more")
	im = importer.New(importer.Config{SourceFile: "a.csv", Concurrency: 1, Backoff: 1}, srv, freePacer{}, store, "t")
	if sum, err = im.Import(t.Context(), strings.NewReader(data+more[strings.Index(more, "\n")+1:])); err != nil {
		t.Fatal(err)
	}
	if sum.Skipped != 2 || sum.InDoubt != 2 || sum.Held != 2 || sum.Created != 1 {
		t.Errorf("import after: skipped %d, in doubt %d (held %d), created %d; want 2, 2 (2), 1", sum.Skipped, sum.InDoubt, sum.Held, sum.Created)
	}
	for _, e := range emails {
		if srv.made[e] > 1 {
			t.Errorf("%s: %d customers made, want 1", e, srv.made[e])
		}
	}
}

// TestImport_MarkExistingLeavesARowOfAnotherPerson: a key names one person:
// a file row under the key of a row in doubt, but with another email or
// type, is not the person the operator found, and leaves that row in doubt.
func TestImport_MarkExistingLeavesARowOfAnotherPerson(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 1, made: map[string]int{}}
	store := memoryStore{memstore.New()}
	allInDoubt(t, srv, store, importer.Config{SourceFile: "a.csv", Concurrency: 1, Backoff: 1}, "email,type,customerId\nold@example.com,INDIVIDUAL,C1\n", 1)
	im := importer.New(importer.Config{SourceFile: "found.csv", MarkExisting: true}, srv, freePacer{}, store, "t")
	sum, err := im.Import(t.Context(), strings.NewReader("email,type,customerId\nnew@example.com,BUSINESS,C1\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Lookup(t.Context(), "t", []string{"id:C1"})
	if err != nil {
		t.Fatal(err)
	}
	if p := got["id:C1"]; p.Status != "in_doubt" || sum.Exists != 0 {
		t.Errorf("row id:C1 (old@example.com, INDIVIDUAL) after --mark-existing of new@example.com BUSINESS: %s, exists %d; want in_doubt, 0", p.Status, sum.Exists)
	}
}

// TestImport_MarkExistingCountsEveryRowRead: the rows a --mark-existing
// run leaves as they were count skipped, so that its counts add up to the
// rows read and it does not call them unfinished.
func TestImport_MarkExistingCountsEveryRowRead(t *testing.T) {
	t.Parallel()
	srv := &idAssigner{lose: 1, made: map[string]int{}}
	store := memoryStore{memstore.New()}
	allInDoubt(t, srv, store, importer.Config{SourceFile: "a.csv", Concurrency: 1, Backoff: 1}, "email,type\na@example.com,INDIVIDUAL\n", 1)
	im := importer.New(importer.Config{SourceFile: "found.csv", MarkExisting: true}, srv, freePacer{}, store, "t")
	sum, err := im.Import(t.Context(), strings.NewReader("email,type\na@example.com,INDIVIDUAL\nnever@example.com,INDIVIDUAL\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Outcome != "completed" || sum.Read != 2 || sum.Exists != 1 || sum.Skipped != 1 || sum.NotStarted() != 0 {
		t.Errorf("--mark-existing: %s, %+v, not started %d; want completed, 2 read, 1 exists, 1 skipped, 0 not started",
			sum.Outcome, sum.Counts, sum.NotStarted())
	}
}

// allInDoubt imports data with cfg through srv, whose answers are all
// lost, into store, and fails t unless its n rows all end in doubt.
func allInDoubt(t *testing.T, srv importer.Sender, store importer.Store, cfg importer.Config, data string, n int64) {
	t.Helper()
	im := importer.New(cfg, srv, freePacer{}, store, "t")
	if sum, err := im.Import(t.Context(), strings.NewReader(data)); err != nil || sum.InDoubt != n {
		t.Fatalf("import 1: %+v, %v; want %d in doubt (every answer lost)", sum.Counts, err, n)
	}
}

// TestImport_ADryRunSaysWhichRowsToSendWaitOnTheTarget: a dry run counts
// rows in doubt among those to send, and says how many of them the import
// sends only once an answer shows the target keeps the ids sent; once the
// ledger knows it does, none wait.
func TestImport_ADryRunSaysWhichRowsToSendWaitOnTheTarget(t *testing.T) {
	t.Parallel()
	srv := &idKeeper{lost: func(n int) bool { return n <= 5 }, calls: map[string]int{}}
	store := memoryStore{memstore.New()}
	lost, _ := genCSV(5, "lost")
	fresh, _ := genCSV(3, "fresh")
	file := lost + fresh[strings.Index(fresh, "\n")+1:]
	allInDoubt(t, srv, store, importer.Config{SourceFile: "f.csv", Concurrency: 1, Backoff: 1}, lost, 5)
	dry := func() importer.Summary {
		t.Helper()
		sum, err := importer.New(importer.Config{SourceFile: "f.csv", DryRun: true}, srv, freePacer{}, store, "t").Import(t.Context(), strings.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	if sum := dry(); sum.ToSend != 8 || sum.ToSendInDoubt != 5 {
		t.Errorf("dry run at a target of unknown ids: to send %d, of them in doubt %d; want 8, 5", sum.ToSend, sum.ToSendInDoubt)
	}
	if _, err := importer.New(importer.Config{SourceFile: "f.csv", Backoff: 1}, srv, freePacer{}, store, "t").Import(t.Context(), strings.NewReader(fresh)); err != nil {
		t.Fatal(err) // its answers show the target keeps the ids sent
	}
	if sum := dry(); sum.ToSend != 5 || sum.ToSendInDoubt != 0 {
		t.Errorf("dry run once the target kept an id: to send %d, of them in doubt %d; want 5, 0", sum.ToSend, sum.ToSendInDoubt)
	}
}
