package importer_test

import (
	"context"
	"fmt"
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

// idSilent keeps the ids sent, as far as anyone can tell, but never names
// one in its answers; its third answer is lost.
type idSilent struct {
	mu    sync.Mutex
	n     int
	calls map[string]int
}

func (s *idSilent) CreateCustomer(_ context.Context, req ripio.CreateCustomerRequest) (ripio.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.calls[req.Email]++
	if s.n == 3 {
		return ripio.Customer{}, &ripio.TransportError{Op: "create customer", Sent: true, Err: fmt.Errorf("connection reset")}
	}
	return ripio.Customer{CustomerID: req.CustomerID, Email: req.Email, Type: req.Type}, nil // IDKept unset: no id in the answer
}

// TestImport_AnswersWithoutAnIDDoNotShowTheTargetKeepsOurs: answers that
// name no customerId say nothing of how the target treats ids, so a lost
// answer is still not sent again in the run.
func TestImport_AnswersWithoutAnIDDoNotShowTheTargetKeepsOurs(t *testing.T) {
	t.Parallel()
	srv := &idSilent{calls: map[string]int{}}
	data, emails := genCSV(5, "silent")
	im := importer.New(importer.Config{SourceFile: "s.csv", Concurrency: 1, Backoff: 1}, srv, freePacer{}, memoryStore{memstore.New()}, "t")
	if _, err := im.Import(t.Context(), strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if n := srv.calls[emails[2]]; n != 1 {
		t.Errorf("the row whose answer was lost was sent %d times, want 1", n)
	}
}
