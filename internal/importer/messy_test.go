package importer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bulkcreate/bulkcreate/internal/importer"
	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
	"github.com/bulkcreate/bulkcreate/internal/sandbox"
)

type wantIssue struct {
	status row.Status
	reason string // a part of the reason
	email  string // when set, the email the failure keeps
}

// TestImport_MessyExports imports each file of testdata/messy and checks
// that exactly the valid distinct rows reach the server and every other row
// is in the ledger with its line and reason.
func TestImport_MessyExports(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		delimiter rune
		created   []string // emails on the server afterwards
		issues    map[int]wantIssue
		headerErr string // the import is refused before any request
	}{
		{file: "bom-crlf.csv", created: []string{"ana@example.com", "beto@example.com"}},
		{file: "quoted.csv", created: []string{"ana@example.com", "beto@example.com", "carla@example.com"}},
		{file: "blank-lines.csv", created: []string{"ana@example.com", "beto@example.com"}},
		{file: "header-spaces-order.csv", created: []string{"ana@example.com", "beto@example.com"}},
		{file: "semicolon.csv", delimiter: ';', created: []string{"ana@example.com", "beto@example.com"}},
		{file: "tab.csv", delimiter: '\t', created: []string{"ana@example.com", "beto@example.com"}},
		// No delimiter given: Excel's sep= line, else detected from the header.
		{file: "semicolon.csv", created: []string{"ana@example.com", "beto@example.com"}},
		{file: "tab.csv", created: []string{"ana@example.com", "beto@example.com"}},
		{file: "pipe.csv", created: []string{"ana@example.com", "beto@example.com"}},
		{
			file:    "excel-sep.csv",
			created: []string{"ana@example.com"},
			issues:  map[int]wantIssue{4: {row.Invalid, `type: "COMPANY" is not INDIVIDUAL or BUSINESS`, "beto@example.com"}},
		},
		{
			file:    "unicode-text.txt", // Excel's "Unicode Text": UTF-16LE with its BOM, tab-separated
			created: []string{"anä@example.com", "beto@example.com"},
			issues:  map[int]wantIssue{4: {row.Invalid, "email: is empty", ""}},
		},
		{
			file:    "customer-id.csv",
			created: []string{"ana@example.com", "beto@example.com", "carla@example.com"},
			issues:  map[int]wantIssue{5: {row.Duplicate, "repeats line 2 (same customerId)", ""}},
		},
		{
			file:    "invalid-rows.csv",
			created: []string{"ana@example.com", "hugo@example.com"},
			issues: map[int]wantIssue{
				3:  {row.Invalid, "has 1 field where the header has 2", "beto@example.com"},
				4:  {row.Invalid, `has a quote (") inside a field that is not in quotes`, `dani@exa"mple.com`},
				5:  {row.Invalid, "email: \"Ana Perez <ana2@example.com>\" is not a bare email address", ""},
				6:  {row.Invalid, `type: "COMPANY" is not INDIVIDUAL or BUSINESS`, ""},
				7:  {row.Invalid, "email: is empty", ""},
				8:  {row.Invalid, "email: is 255 characters long; at most 254", ""},
				9:  {row.Duplicate, "repeats line 2 (same email)", ""},
				10: {row.Invalid, "type: is empty", ""},
				11: {row.Invalid, "has no domain with a dot", ""},
				13: {row.Duplicate, "repeats line 12", ""},
				14: {row.Invalid, "has 3 fields where the header has 2", "ivan@example.com"},
			},
		},
		{
			// One person each, however the email is spelt; invisible characters refused.
			file:    "unicode-emails.csv",
			created: []string{"alice@example.com", "ana@münchen.de", "josé@example.com"},
			issues: map[int]wantIssue{
				3: {row.Invalid, "U+200B", "alice\u200b@example.com"},
				4: {row.Invalid, "U+FEFF", "\ufeffalice@example.com"},
				5: {row.Duplicate, "repeats line 2 (same email)", ""},
				7: {row.Duplicate, "repeats line 6 (same email)", ""},
				9: {row.Duplicate, "repeats line 8 (same email)", ""},
			},
		},
		{file: "no-email-column.csv", headerErr: `no email or type column (found "mail", "kind";`},
		{file: "empty.csv", headerErr: "the file is empty"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".csv"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join("testdata", "messy", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			fx := newFixture(t, sandbox.Options{})
			sum, err := fx.importCSV(t, string(data), runOpts{cfg: importer.Config{SourceFile: tt.file, Delimiter: tt.delimiter}})
			if tt.headerErr != "" {
				var he *importer.HeaderError
				if !errors.As(err, &he) || !strings.Contains(err.Error(), tt.headerErr) || !strings.HasPrefix(err.Error(), tt.file+": line 1: ") {
					t.Fatalf("Import(%s) err = %v, want a HeaderError naming the file, line 1 and %q", tt.file, err, tt.headerErr)
				}
				if n := fx.srv.Stats().Requests + fx.srv.Stats().TokenRequests; n != 0 {
					t.Errorf("requests sent = %d, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Import(%s): %v", tt.file, err)
			}
			var got []string
			for _, c := range fx.srv.Customers() {
				got = append(got, c.Email)
			}
			sort.Strings(got)
			if strings.Join(got, " ") != strings.Join(tt.created, " ") {
				t.Errorf("server customers = %v, want %v", got, tt.created)
			}
			issues := map[int]ledger.Failure{}
			l, err := ledger.Open(context.Background(), fx.ledgerPath, ledger.Options{MustExist: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			err = l.Failures(context.Background(), fx.target, nil, func(f ledger.Failure) error {
				issues[f.SourceLine] = f
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for line, w := range tt.issues {
				f, ok := issues[line]
				if !ok {
					t.Errorf("line %d: no issue recorded, want %s %q", line, w.status, w.reason)
					continue
				}
				if f.Status != w.status || !strings.Contains(f.Reason, w.reason) || !strings.HasPrefix(f.Reason, tt.file+":") {
					t.Errorf("line %d: %s %q, want %s with a reason naming the file and containing %q", line, f.Status, f.Reason, w.status, w.reason)
				}
				if w.email != "" && f.Email != w.email {
					t.Errorf("line %d: failure's email %q, want %q: the row's fields are kept for the fix", line, f.Email, w.email)
				}
			}
			for line, f := range issues {
				if _, ok := tt.issues[line]; !ok {
					t.Errorf("line %d: unexpected issue %s %q", line, f.Status, f.Reason)
				}
			}
			rep := fx.report(t)
			if int64(rep.Rows) != sum.Read {
				t.Errorf("report rows = %d, want the %d data rows read", rep.Rows, sum.Read)
			}
		})
	}
}
