package importer

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzReadAndValidate feeds arbitrary bytes through the row reader and the
// validator: nothing panics, every record has a line, and every row that
// passes validation is one the server would take.
func FuzzReadAndValidate(f *testing.F) {
	seeds := []string{
		"email,type\na@example.com,INDIVIDUAL\n",
		"\xef\xbb\xbfEmail , TYPE\r\nA@Example.com,business\r\n",
		"customer_id,email,type\nc-1,a@example.com,INDIVIDUAL\n,b@example.com,BUSINESS\n",
		"email,type\n\"a@example.com\",\"INDIVIDUAL\"\n\"unterminated,INDIVIDUAL\n",
		"email,type\nx\"y@example.com,INDIVIDUAL\na@example.com\n,,\n",
		"email;type\na@example.com;INDIVIDUAL\n",
		"type,email,notes\nINDIVIDUAL,Ana <a@example.com>,\"multi\nline\"\n",
		"",
		"email\n",
		"\xff\xfee\x00m\x00a\x00i\x00l\x00,\x00t\x00y\x00p\x00e\x00\n\x00a\x00@\x00b\x00.\x00c\x00,\x00B\x00U\x00S\x00I\x00N\x00E\x00S\x00S\x00\n\x00",
		"\xfe\xff\x00e\x00m\x00a\x00i\x00l\x00,\x00t\x00y\x00p\x00e",
		"email,type\njos\xe9@example.com,INDIVIDUAL\n",
		"email,type\na@example.com," + strings.Repeat("T", 300) + "\nb@example.com,BUSINESS\n",
		"email,type,notes\na@example.com,INDIVIDUAL,\"open\n" + strings.Repeat("b@example.com,BUSINESS,\n", 20),
		"email,type," + strings.Repeat("h", 300) + "\n",
		"email,type,customerId,status,reason,line,file\n'=a@example.com,'@x,''-1,invalid,x,'+2,'=f.csv\n'+b@example.com,BUSINESS,,invalid,x,3\n",
		"email,type\nalice\u200b@example.com,INDIVIDUAL\n\ufeffalice@example.com,BUSINESS\njose\u0301@M\u00dcNCHEN.de,INDIVIDUAL\nstra\u00dfe@xn--mnchen-3ya.de,BUSINESS\n",
		"email,type,customerId\na@example.com,INDIVIDUAL," + strings.Repeat("\x01", 200) + "\n",
	}
	for _, s := range seeds {
		f.Add(s, ',')
	}
	f.Add("email;type\na@example.com;INDIVIDUAL\n", ';')
	// Delimiter 0: a sep= line, else detected from the header.
	f.Add("email;type\na@example.com;INDIVIDUAL\n", rune(0))
	f.Add("sep=;\r\nemail;type\r\na@example.com;INDIVIDUAL\r\n", rune(0))
	f.Add("SEP=|\nEmail|Type\na@example.com|BUSINESS\n", rune(0))
	f.Add("sep=;\nemail,type\na@example.com,INDIVIDUAL\n", ',')
	f.Add("Email Address\tCustomer Type\tNotes\na@example.com\tINDIVIDUAL\tx, y; z\n", rune(0))
	f.Fuzz(func(t *testing.T, data string, delim rune) {
		if delim != 0 && (delim == '"' || delim == '\r' || delim == '\n' || delim == utf8.RuneError || !validDelim(delim)) {
			t.Skip()
		}
		// A small cap, so that fuzzed input reaches it.
		rr, err := newRowReader(strings.NewReader(data), Config{SourceFile: "fuzz.csv", Delimiter: delim, MaxLineBytes: 256})
		if err != nil {
			var he *HeaderError
			if len(err.Error()) > 1024 {
				t.Fatalf("header error of %d bytes, want at most 1 KiB", len(err.Error()))
			}
			if errors.As(err, &he) && !strings.HasPrefix(err.Error(), "fuzz.csv: line 1: header: ") && !strings.HasPrefix(err.Error(), "fuzz.csv: line 2: header: ") {
				t.Fatalf("header error %q does not name the file and line", err)
			}
			return
		}
		lastLine := 0
		for i := 0; i < 10000; i++ {
			rec, err := rr.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				return // a reader failure, reported with the file's name
			}
			if rec.Line <= lastLine && rec.Err == nil {
				t.Fatalf("record line %d after line %d", rec.Line, lastLine)
			}
			lastLine = max(lastLine, rec.Line)
			row, rowErr := validate("fuzz.csv", rec)
			if rowErr != nil {
				if rowErr.Line != rec.Line || !strings.HasPrefix(rowErr.Error(), "fuzz.csv:") {
					t.Fatalf("row error %q does not name the file and line %d", rowErr, rec.Line)
				}
				if len(rowErr.Error()) > 1024 {
					t.Fatalf("row error of %d bytes, want at most 1 KiB", len(rowErr.Error()))
				}
				continue
			}
			if row.Email == "" || len(row.Email) > maxEmailLen || strings.ContainsAny(row.Email, " <>\n") || invisibleIn(row.Email) != "" {
				t.Fatalf("validate accepted email %q", row.Email)
			}
			if row.Type != "INDIVIDUAL" && row.Type != "BUSINESS" {
				t.Fatalf("validate accepted type %q", row.Type)
			}
			if row.Key == "" || (strings.HasPrefix(row.Key, "id:") && row.CustomerID == "") {
				t.Fatalf("valid row without a key, or keyed by an empty customerId: %+v", row)
			}
		}
	})
}

func validDelim(r rune) bool {
	return r != 0xFFFD && utf8.ValidRune(r) && r > ' ' || r == '\t'
}

func TestSeenSet_FindsEveryRepeatAndNoFalseOne(t *testing.T) {
	t.Parallel()
	s := newSeenSet()
	const n = 200_000 // grows the table many times
	for i := range n {
		if first, dup := s.add(emailKey(fmt.Sprintf("user%d@example.com", i)), i+2); dup {
			t.Fatalf("add(new key %d) = duplicate of line %d, want new", i, first)
		}
	}
	for _, i := range []int{0, 1, 777, n - 1} {
		first, dup := s.add(emailKey(fmt.Sprintf("USER%d@example.com", i)), n+10)
		if !dup || first != i+2 {
			t.Errorf("add(repeat of key %d) = %d, %v; want line %d, true", i, first, dup, i+2)
		}
	}
}

// TestSeenSet_HoldsAMillionKeysInUnder22MiB checks the set's size where the
// memory target (64 MiB for a million rows) needs it small, and that no
// shard grows past its load limit.
func TestSeenSet_HoldsAMillionKeysInUnder22MiB(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("adds a million keys")
	}
	s := newSeenSet()
	const n = 1_000_000
	for i := range n {
		s.add(emailKey(fmt.Sprintf("user%d@example.com", i)), i+2)
	}
	slots, keys := 0, 0
	for _, sh := range s.shards {
		slots += len(sh.hash)
		keys += sh.count
		if sh.count*5 > len(sh.hash)*4 {
			t.Errorf("a shard holds %d keys in %d slots, over 4/5 full", sh.count, len(sh.hash))
		}
	}
	if keys != n {
		t.Errorf("shards hold %d keys, want %d", keys, n)
	}
	if bytes := slots * 12; bytes > 22<<20 {
		t.Errorf("a million keys take %d slots, %.1f MiB; want at most 22 MiB", slots, float64(bytes)/(1<<20))
	}
}
