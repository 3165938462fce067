package ripio_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulkcreate/bulkcreate/internal/ripio"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

// TestSandbox_Misbehaviours: the client against the project's own fake
// playing each misbehaving server, as the importer and the CLI's tests see
// it.
func TestSandbox_Misbehaviours(t *testing.T) {
	t.Parallel()
	const year = 365 * 24 * time.Hour
	tests := []struct {
		name  string
		opts  sandbox.Options
		check func(t *testing.T, c *ripio.Client, cust ripio.Customer, err error)
	}{
		{"HTML200", sandbox.Options{CreateHTML200: true}, func(t *testing.T, _ *ripio.Client, _ ripio.Customer, err error) {
			if v := ripio.Classify(err); v.Outcome != ripio.InDoubt || v.HTTPStatus != 200 {
				t.Errorf("Classify(%v) = %+v, want in_doubt with status 200", err, v)
			}
		}},
		{"OtherEmail", sandbox.Options{OtherEmail: true}, func(t *testing.T, _ *ripio.Client, _ ripio.Customer, err error) {
			if v := ripio.Classify(err); v.Outcome != ripio.InDoubt {
				t.Errorf("Classify(%v) = %+v, want in_doubt", err, v)
			}
		}},
		{"AssignIDs", sandbox.Options{AssignIDs: true}, func(t *testing.T, c *ripio.Client, cust ripio.Customer, err error) {
			if v := ripio.Classify(err); v.Outcome != ripio.Created || cust.AssignedID == "" || cust.AssignedID == ana.CustomerID || !c.AssignsIDs() {
				t.Errorf("CreateCustomer = %+v, %v (AssignsIDs %v), want created with the server's id in AssignedID", cust, err, c.AssignsIDs())
			}
		}},
		{"FailEveryCreate", sandbox.Options{FailBeforeCommit: 1}, func(t *testing.T, _ *ripio.Client, _ ripio.Customer, err error) {
			if v := ripio.Classify(err); v.Outcome != ripio.InDoubt || v.HTTPStatus != 503 {
				t.Errorf("Classify(%v) = %+v, want in_doubt with status 503", err, v)
			}
		}},
		{"ThrottleAllForAYear", sandbox.Options{ThrottleAll: year}, func(t *testing.T, _ *ripio.Client, _ ripio.Customer, err error) {
			if v := ripio.Classify(err); v.Outcome != ripio.Throttled || v.RetryAfter != year {
				t.Errorf("Classify(%v) = %+v, want throttled for a year", err, v)
			}
		}},
		{"TokenNotFound", sandbox.Options{TokenNotFound: true}, func(t *testing.T, _ *ripio.Client, _ ripio.Customer, err error) {
			if !errors.Is(err, ripio.ErrWrongBaseURL) {
				t.Errorf("CreateCustomer = %v, want ErrWrongBaseURL", err)
			}
		}},
	}
	for _, enc := range sandbox.EchoEncodings() {
		for _, status := range []int{401, 503} {
			tests = append(tests, struct {
				name  string
				opts  sandbox.Options
				check func(t *testing.T, c *ripio.Client, cust ripio.Customer, err error)
			}{
				fmt.Sprintf("TokenEcho/%s/%d", enc, status),
				sandbox.Options{ClientSecret: hostileSecret, TokenEcho: enc, TokenEchoStatus: status},
				func(t *testing.T, _ *ripio.Client, _ ripio.Customer, err error) {
					if v := ripio.Classify(err); v.HTTPStatus != status {
						t.Errorf("Classify(%v) = %+v, want status %d", err, v, status)
					}
					checkNoEcho(t, errorTexts(err), "sandbox-client", "secret", hostileSecret)
				},
			})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, c := newRipiotest(t, tt.opts)
			cust, err := c.CreateCustomer(t.Context(), ana)
			tt.check(t, c, cust, err)
		})
	}
}
