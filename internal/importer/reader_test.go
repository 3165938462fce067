package importer

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestRowReader_KeepsTheFieldsOfARecordWithTheWrongCount: a record with
// too few or too many fields, or a stray quote, comes back refused but with
// its fields, after more input than the reader keeps (64 KiB) and after
// another parse error; a quoted field left open to the end of the file
// comes back refused without a guess at its fields.
func TestRowReader_KeepsTheFieldsOfARecordWithTheWrongCount(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("email,type,customerId\n")
	for i := range 3000 { // ~110 KB
		fmt.Fprintf(&b, "user%d@example.com,INDIVIDUAL,c-%d\n", i, i)
	}
	b.WriteString("bad\"quote@example.com,INDIVIDUAL,c-x\n")   // line 3002
	b.WriteString("short@example.com,BUSINESS\n")              // line 3003
	b.WriteString("ok@example.com,INDIVIDUAL,c-ok\n")          // line 3004
	b.WriteString("\"long@example.com\",BUSINESS,c-9,extra\n") // line 3005
	b.WriteString("\"in\"side@example.com\",BUSINESS,c-q\r\n") // line 3006
	b.WriteString("\"open@example.com,INDIVIDUAL,c-o\n")       // line 3007, open to the end
	b.WriteString("last@example.com,INDIVIDUAL,c-l\n")
	rr, records := readRecords(t, b.String())
	got := map[int]record{}
	for _, rec := range records {
		got[rec.Line] = rec
	}
	tests := []struct {
		line                   int
		email, typ, customerID string
		err                    string
	}{
		{3001, "user2999@example.com", "INDIVIDUAL", "c-2999", ""},
		{3002, `bad"quote@example.com`, "INDIVIDUAL", "c-x", `has a quote (") inside a field that is not in quotes`},
		{3003, "short@example.com", "BUSINESS", "", "has 2 fields where the header has 3"},
		{3004, "ok@example.com", "INDIVIDUAL", "c-ok", ""},
		{3005, "long@example.com", "BUSINESS", "c-9", "has 4 fields where the header has 3"},
		{3006, `in"side@example.com`, "BUSINESS", "c-q", `has a field in quotes with a stray or missing quote`},
		{3007, "", "", "", `has a field in quotes with a stray or missing quote`},
	}
	for _, tt := range tests {
		rec, ok := got[tt.line]
		if !ok {
			t.Errorf("line %d: no record", tt.line)
			continue
		}
		errText := ""
		if rec.Err != nil {
			errText = rec.Err.Error()
		}
		if rec.Email != tt.email || rec.Type != tt.typ || rec.CustomerID != tt.customerID || (tt.err == "") != (errText == "") || !strings.Contains(errText, tt.err) {
			t.Errorf("line %d: %q %q %q, err %q; want %q %q %q, err containing %q", tt.line, rec.Email, rec.Type, rec.CustomerID, errText, tt.email, tt.typ, tt.customerID, tt.err)
		}
	}
	if n := len(rr.tap.buf); n > 80<<10 {
		t.Errorf("the reader keeps %d bytes of input, want at most about 64 KiB more than a record", n)
	}
}

// TestRowReader_GuessesNoFieldsForAnOpenQuote: a quoted field that never
// closes takes the rest of its line with it, on the file's last line too:
// the record comes back refused with no fields rather than the whole line
// as its email.
func TestRowReader_GuessesNoFieldsForAnOpenQuote(t *testing.T) {
	t.Parallel()
	for _, last := range []string{
		"\"open@example.com,INDIVIDUAL,c-o\n",
		"\"open@example.com,INDIVIDUAL,c-o",
		"\"in\"side@example.com,BUSINESS,c-q\r\n",
	} {
		_, got := readRecords(t, "email,type,customerId\nok@example.com,INDIVIDUAL,c-ok\n"+last)
		if len(got) != 2 || got[1].Err == nil || got[1].Email+got[1].Type+got[1].CustomerID != "" {
			t.Errorf("last line %q: records %+v; want the second refused with no fields", last, got)
		}
	}
}

// readRecords reads every record of the CSV text in, with its reader.
func readRecords(t *testing.T, in string) (*rowReader, []record) {
	t.Helper()
	rr, err := newRowReader(strings.NewReader(in), Config{SourceFile: "f.csv", Delimiter: ','})
	if err != nil {
		t.Fatal(err)
	}
	var got []record
	for {
		rec, err := rr.next()
		if err == io.EOF {
			return rr, got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec)
	}
}

// TestRowReader_TakesTheDelimiterFromASepLineOrTheHeader: Excel's "sep=;"
// first line names the delimiter (and still counts as line 1); without
// one, and without a delimiter asked for, the header's says which.
func TestRowReader_TakesTheDelimiterFromASepLineOrTheHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data string
		asked      rune
		want       Format
		firstLine  int
	}{
		{"Comma", "email,type\na@example.com,INDIVIDUAL\n", 0, Format{"UTF-8", ',', "comma", "header"}, 2},
		{"Semicolon", "Email;Type;Notes\na@example.com;INDIVIDUAL;x, y\n", 0, Format{"UTF-8", ';', "semicolon", "header"}, 2},
		{"Tab", "email\ttype\na@example.com\tINDIVIDUAL\n", 0, Format{"UTF-8", '\t', "tab", "header"}, 2},
		{"Pipe", "\"e-mail\"|type|notes, more\na@example.com|INDIVIDUAL|x\n", 0, Format{"UTF-8", '|', "pipe", "header"}, 2},
		{"SepLine", "sep=;\r\nemail;type\r\na@example.com;INDIVIDUAL\r\n", 0, Format{"UTF-8", ';', "semicolon", "sep line"}, 3},
		{"SepLineAfterBOM", "\xef\xbb\xbfSEP=|\nemail|type\na@example.com|INDIVIDUAL\n", 0, Format{"UTF-8 with BOM", '|', "pipe", "sep line"}, 3},
		{"SepLineAsAsked", "sep=,\nemail,type\na@example.com,INDIVIDUAL\n", ',', Format{"UTF-8", ',', "comma", "sep line"}, 3},
		{"Asked", "email;type;x,y\na@example.com;INDIVIDUAL;y\n", ';', Format{"UTF-8", ';', "semicolon", "config"}, 2},
	}
	for _, tt := range tests {
		rr, err := newRowReader(strings.NewReader(tt.data), Config{SourceFile: "f.csv", Delimiter: tt.asked})
		if err != nil {
			t.Errorf("%s: newRowReader: %v", tt.name, err)
			continue
		}
		if rr.Format() != tt.want {
			t.Errorf("%s: Format() = %+v, want %+v", tt.name, rr.Format(), tt.want)
		}
		rec, err := rr.next()
		if err != nil || rec.Err != nil || rec.Email != "a@example.com" || rec.Line != tt.firstLine {
			t.Errorf("%s: next() = %+v, %v; want a@example.com at line %d", tt.name, rec, err, tt.firstLine)
		}
	}
	_, err := newRowReader(strings.NewReader("sep=;\nemail;type\n"), Config{SourceFile: "f.csv", Delimiter: ','})
	if err == nil || !strings.Contains(err.Error(), "sep=;") {
		t.Errorf("newRowReader(sep=; with ',' asked) err = %v, want the contradiction named", err)
	}
	_, err = newRowReader(strings.NewReader("sep=;\nmail;kind\n"), Config{SourceFile: "f.csv"})
	if err == nil || !strings.HasPrefix(err.Error(), "f.csv: line 2: header: ") {
		t.Errorf("newRowReader(no email column after sep=;) err = %v, want it at line 2", err)
	}
}

// TestRowReader_MapsColumnsOfOtherNames: Config.Columns takes a column of
// another name as ours (and leaves out the one ours by name), and header
// errors quote the header as written, within bounds.
func TestRowReader_MapsColumnsOfOtherNames(t *testing.T) {
	t.Parallel()
	cfg := Config{SourceFile: "f.csv", Columns: map[string]string{"email": "E-mail Address", "type": "kind", "customerId": "Client No."}}
	rr, err := newRowReader(strings.NewReader("Email,E-MAIL ADDRESS,Kind,Client No.\nold@example.com,a@example.com,BUSINESS,c-1\n"), cfg)
	if err != nil {
		t.Fatalf("newRowReader: %v", err)
	}
	rec, err := rr.next()
	if err != nil || rec.Email != "a@example.com" || rec.Type != "BUSINESS" || rec.CustomerID != "c-1" || !rr.hasCustomerID {
		t.Errorf("next() = %+v, %v; want a@example.com BUSINESS c-1 from the mapped columns", rec, err)
	}

	long := strings.Repeat("x", 50<<10)
	tests := []struct {
		name, header string
		columns      map[string]string
		want         string
	}{
		{"AsWritten", "Correo Electrónico;Tipo De Cliente\n", nil, `no email or type column (found "Correo Electrónico", "Tipo De Cliente"; read as UTF-8, semicolon-separated, detected from the header); name them with --map`},
		{"MappedMissing", "Mail,Kind\n", map[string]string{"email": "Correo"}, `no column "Correo" to take as email (found "Mail", "Kind")`},
		{"NotOurs", "Mail,Kind\n", map[string]string{"name": "Mail"}, `cannot map "name"`},
		{"Twice", "Email,E-Mail,Type\n", nil, `columns "Email" and "E-Mail" are both the email column`},
		{"Long", long + "," + strings.Repeat("y,", 5000) + "\n", nil, `found "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…(51200 bytes)", "y", `},
	}
	for _, tt := range tests {
		_, err := newRowReader(strings.NewReader(tt.header), Config{SourceFile: "f.csv", Columns: tt.columns})
		var he *HeaderError
		if !errors.As(err, &he) || !strings.Contains(err.Error(), tt.want) || len(err.Error()) > 1024 {
			t.Errorf("%s: newRowReader err = %v, want a HeaderError of at most 1 KiB containing %q", tt.name, err, tt.want)
		}
	}
}
