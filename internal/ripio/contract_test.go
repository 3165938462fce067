package ripio_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/prismtest"
	"github.com/bulkcreate/bulkcreate/internal/ripio"
)

// The contract tests run the real client against Stoplight Prism serving
// the OpenAPI document: Prism checks every request against the schema and
// the security schemes, which we did not write. They skip when Prism is not
// installed (bash .ci/prism.sh), and fail instead under CI=true.

const rampSpec = "testdata/ramp-subset.openapi.yaml"

// prismCustomerID and prismEmail are those of the 201 example in rampSpec:
// Prism answers it to every create, whatever was sent.
const (
	prismCustomerID = "7142b065-79c4-4f48-9e33-11b23bg689e2"
	prismEmail      = "individual@mail.com"
)

func TestContract_CreateCustomer(t *testing.T) {
	t.Parallel()
	m := prismtest.Start(t, rampSpec)
	c := newClient(t, m.URL)
	for _, req := range []ripio.CreateCustomerRequest{
		{CustomerID: "c-0001", Email: prismEmail, Type: ripio.Individual},
		{CustomerID: "b-0002", Email: "ops@acme.example", Type: ripio.Business},
		{CustomerID: "c-0003", Email: "bruno.silva+ripio@example.com.ar", Type: ripio.Individual},
	} {
		got, err := c.CreateCustomer(t.Context(), req)
		if req.Email == prismEmail {
			// The example is this person's answer, under an id of the
			// server's own.
			if err != nil || got.CustomerID != prismCustomerID || got.AssignedID != prismCustomerID {
				t.Errorf("CreateCustomer(%+v) = %+v, %v, want created with the server's id %q assigned", req, got, err, prismCustomerID)
			}
			continue
		}
		// For anyone else the example is another person's answer.
		if v := ripio.Classify(err); v.Outcome != ripio.InDoubt {
			t.Errorf("Classify(CreateCustomer(%+v)) = %+v, want in_doubt: the answer names %s", req, v, prismEmail)
		}
	}
	if v := m.Violations(); len(v) > 0 {
		t.Errorf("requests violate the OpenAPI contract:\n%s", strings.Join(v, "\n"))
	}
}

// TestContract_ViolationsAreReported proves that the check above can fail.
func TestContract_ViolationsAreReported(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		send func(t *testing.T, baseURL string)
	}{
		{"RawPOST", func(t *testing.T, baseURL string) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, baseURL+"/api/v1/customers/",
				strings.NewReader(`{"customerId": "c-0001", "email": "ana@example.com", "type": "ALIEN"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer x")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("POST /api/v1/customers/ = %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}},
		{"ClientUnknownType", func(t *testing.T, baseURL string) {
			// The client leaves checking the type to its callers.
			req := ripio.CreateCustomerRequest{CustomerID: "c-0001", Email: "ana@example.com", Type: "ALIEN"}
			if _, err := newClient(t, baseURL).CreateCustomer(t.Context(), req); err == nil {
				t.Errorf("CreateCustomer(%+v) = nil error, want Prism's refusal", req)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := prismtest.Start(t, rampSpec)
			tt.send(t, m.URL)
			v := m.Violations()
			if joined := strings.Join(v, "\n"); !strings.Contains(joined, "POST /api/v1/customers/") || !strings.Contains(joined, "type") {
				t.Errorf("Violations() after a create with type ALIEN = %q, want one naming the create and its type", v)
			}
		})
	}
}
