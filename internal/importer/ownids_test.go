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
