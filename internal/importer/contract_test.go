package importer_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/prismtest"
	"github.com/bulkcreate/bulkcreate/internal/ratelimit"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// TestContract_ImportThroughPrism imports a CSV through Stoplight Prism
// serving the published OpenAPI document: every token and create request
// the importer sends must pass Prism's validation. Skips without Prism,
// except under CI=true.
func TestContract_ImportThroughPrism(t *testing.T) {
	t.Parallel()
	m := prismtest.Start(t, "../ripio/testdata/ramp-subset.openapi.yaml")
	client, err := ripio.New(ripio.Config{BaseURL: m.URL, ClientID: "contract-id", ClientSecret: "contract-secret", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := "Email,Type,customerId\nana@example.com,individual,\nops@acme.example.com,BUSINESS,acme-ops\n\"bruno+ripio@example.com.ar\",Individual,\n"
	im := importer.New(importer.Config{SourceFile: "contract.csv", Concurrency: 2}, client, ratelimit.New(ratelimit.Config{}), importer.Ledger(l), "prism")
	sum, err := im.Import(t.Context(), strings.NewReader(data))
	if err != nil {
		t.Fatalf("Import through Prism: %v", err)
	}
	if sum.Created != 3 {
		t.Errorf("created = %d, want 3 (%+v)", sum.Created, sum.Counts)
	}
	if v := m.Violations(); len(v) > 0 {
		t.Errorf("the importer's requests violate the OpenAPI contract:\n%s", strings.Join(v, "\n"))
	}
}
