package importer

import (
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/text/encoding/unicode"
)

// TestRowReader_DecodesUTF8AndUTF16WithTheirBOM reads the same rows saved
// as plain UTF-8, UTF-8 with a BOM and as Excel's "Unicode Text" (UTF-16
// with a BOM, tab-separated) in either byte order.
func TestRowReader_DecodesUTF8AndUTF16WithTheirBOM(t *testing.T) {
	t.Parallel()
	const text = "email\ttype\r\nanä@example.com\tINDIVIDUAL\r\nzoë@example.com\tBUSINESS\r\n"
	utf16 := func(e unicode.Endianness) string {
		s, err := unicode.UTF16(e, unicode.UseBOM).NewEncoder().String(text)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name, data, encoding string
	}{
		{"UTF8", text, EncodingUTF8},
		{"UTF8BOM", "\xef\xbb\xbf" + text, EncodingUTF8BOM},
		{"UTF16LE", utf16(unicode.LittleEndian), EncodingUTF16LE},
		{"UTF16BE", utf16(unicode.BigEndian), EncodingUTF16BE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rr, err := newRowReader(strings.NewReader(tt.data), Config{SourceFile: "f.csv", Delimiter: '\t'})
			if err != nil {
				t.Fatalf("newRowReader: %v", err)
			}
			var got []string
			for {
				rec, err := rr.next()
				if err == io.EOF {
					break
				}
				if err != nil || rec.Err != nil {
					t.Fatalf("next() = %+v, %v", rec, err)
				}
				got = append(got, rec.Email+" "+rec.Type)
			}
			if want := "anä@example.com INDIVIDUAL|zoë@example.com BUSINESS"; strings.Join(got, "|") != want {
				t.Errorf("rows = %q, want %q", strings.Join(got, "|"), want)
			}
			if rr.text.encoding != tt.encoding {
				t.Errorf("encoding = %q, want %q", rr.text.encoding, tt.encoding)
			}
			if n := rr.text.consumed(); n != int64(len(tt.data)) {
				t.Errorf("consumed() = %d at the end, want %d", n, len(tt.data))
			}
		})
	}
}

// TestRowReader_NamesTheEncodingOfAFileThatIsNotUTF8: a Windows-1252
// header, row, UTF-32 or UTF-16 without a BOM gets a message about the
// encoding, with the file and line, not a hint about the delimiter.
func TestRowReader_NamesTheEncodingOfAFileThatIsNotUTF8(t *testing.T) {
	t.Parallel()
	headerTests := []struct{ name, data, want string }{
		{"Latin1Header", "correo electr\xf3nico,type\na@example.com,INDIVIDUAL\n", "column 1 of the header is not valid UTF-8: the file is in another encoding"},
		{"UTF32", "\xff\xfe\x00\x00e\x00\x00\x00", "UTF-32"},
		{"UTF16WithoutBOM", "e\x00m\x00a\x00i\x00l\x00", "UTF-16 without a byte-order mark"},
	}
	for _, tt := range headerTests {
		_, err := newRowReader(strings.NewReader(tt.data), Config{SourceFile: "f.csv"})
		var he *HeaderError
		if !errors.As(err, &he) || !strings.HasPrefix(err.Error(), "f.csv: line 1: header: ") || !strings.Contains(err.Error(), tt.want) ||
			strings.Contains(err.Error(), "delimiter") {
			t.Errorf("%s: newRowReader err = %v, want a HeaderError naming %q and not the delimiter", tt.name, err, tt.want)
		}
	}

	_, records := readRecords(t, "email,type\nok@example.com,INDIVIDUAL\njos\xe9@example.com,INDIVIDUAL\nana@example.com,BUSINESS\n")
	if len(records) != 3 {
		t.Fatalf("records = %+v, want 3", records)
	}
	_, rowErr := validate("f.csv", records[1])
	if rowErr == nil || !strings.HasPrefix(rowErr.Error(), "f.csv:3: the email is not valid UTF-8: the file is in another encoding") ||
		!strings.Contains(rowErr.Error(), "Windows-1252") || !strings.HasSuffix(rowErr.Error(), "(byte 0xE9 at byte 4)") {
		t.Errorf("validate(Latin-1 row) = %v, want the file, line 3 and the encoding named", rowErr)
	}
	if _, rowErr := validate("f.csv", records[2]); rowErr != nil {
		t.Errorf("validate(the row after it) = %v, want valid: one bad row costs one row", rowErr)
	}
}

// TestRowReader_ReadsOldMacLineEnds: a file whose lines end in CR alone
// (an old Mac export) reads as its lines, not as one long header.
func TestRowReader_ReadsOldMacLineEnds(t *testing.T) {
	t.Parallel()
	_, records := readRecords(t, "email,type\rana@example.com,INDIVIDUAL\rbeto@example.com,BUSINESS\r")
	if len(records) != 2 || records[0].Email != "ana@example.com" || records[1].Type != "BUSINESS" || records[1].Line != 3 {
		t.Errorf("records = %+v, want ana (line 2) and beto (line 3)", records)
	}
}
