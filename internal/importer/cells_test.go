package importer

import (
	"strings"
	"testing"
)

// TestSpreadsheetSafe_NeutralisesFormulasAndRoundTrips: no cell it
// returns begins like a formula, and taking its apostrophe off gives the
// value back, apostrophes of the value's own included.
func TestSpreadsheetSafe_NeutralisesFormulasAndRoundTrips(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "'", "''", "ana@example.com", "=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "'=1+1", "''@x", "'plain",
		`=HYPERLINK("http://evil.example","click")`, "=cmd|' /C calc'!A0", "a=b", " =x",
	} {
		safe := SpreadsheetSafe(s)
		if safe != "" && strings.IndexByte("=+-@\t\r", safe[0]) >= 0 {
			t.Errorf("SpreadsheetSafe(%q) = %q, which begins like a formula", s, safe)
		}
		if back := fromSpreadsheetSafe(safe); back != s {
			t.Errorf("fromSpreadsheetSafe(SpreadsheetSafe(%q)) = %q, want it back", s, back)
		}
		if strings.IndexAny(s, "=+-@\t\r'") < 0 && safe != s {
			t.Errorf("SpreadsheetSafe(%q) = %q, want it unchanged", s, safe)
		}
	}
}

// TestRowReader_RestoresCellsOfAFailuresFile: a file with the failures
// file's origin columns has its apostrophes taken off, in a row refused
// for its field count too; any other file is read as written.
func TestRowReader_RestoresCellsOfAFailuresFile(t *testing.T) {
	t.Parallel()
	failures := "email,type,customerId,status,reason,line,file\n" +
		"'=1+1@example.com,'@SUM(A1),'-2+3,invalid,x,'+7,'=in.csv\n" +
		"'+a@example.com,INDIVIDUAL,''=c,invalid,x,3,in.csv,extra\n"
	_, recs := readRecords(t, failures)
	if len(recs) != 2 {
		t.Fatalf("records = %+v, want 2", recs)
	}
	if r := recs[0]; r.Email != "=1+1@example.com" || r.Type != "@SUM(A1)" || r.CustomerID != "-2+3" || r.OriginLine != 7 || r.OriginFile != "=in.csv" {
		t.Errorf("record = %+v, want the values before SpreadsheetSafe", r)
	}
	if r := recs[1]; r.Email != "+a@example.com" || r.CustomerID != "'=c" {
		t.Errorf("record refused for its field count = %+v, want +a@example.com and '=c", r)
	}
	_, recs = readRecords(t, "email,type\n'=1+1@example.com,INDIVIDUAL\n")
	if len(recs) != 1 || recs[0].Email != "'=1+1@example.com" {
		t.Errorf("records of a file that is not a failures file = %+v, want the apostrophe kept", recs)
	}
}

// TestRowReader_ReadsTheIssueDigestOfAFailuresFile: the issue column comes
// back beside the origin file and line, its spreadsheet apostrophe taken
// off; a failures file written before the column reads as no digest.
func TestRowReader_ReadsTheIssueDigestOfAFailuresFile(t *testing.T) {
	t.Parallel()
	_, recs := readRecords(t, "email,type,customerId,status,reason,line,file,issue\n"+
		"a@example.com,INDIVIDUAL,,invalid,x,7,in.csv, 0a1b2c3d4e5f6a7b \n"+
		"b@example.com,INDIVIDUAL,,invalid,x,8,in.csv,'=ab\n")
	if len(recs) != 2 || recs[0].OriginIssue != "0a1b2c3d4e5f6a7b" || recs[1].OriginIssue != "=ab" {
		t.Errorf("records = %+v, want issues 0a1b2c3d4e5f6a7b and =ab", recs)
	}
	_, recs = readRecords(t, "email,type,customerId,status,reason,line,file\na@example.com,INDIVIDUAL,,invalid,x,7,in.csv\n")
	if len(recs) != 1 || recs[0].OriginLine != 7 || recs[0].OriginIssue != "" {
		t.Errorf("records of a failures file without the issue column = %+v, want line 7 and no issue", recs)
	}
}
