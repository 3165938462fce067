package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gocarina/gocsv"
)

// HeaderError is a file that cannot be imported at all: no header, or no
// email or type column, or an encoding the reader does not take.
type HeaderError struct {
	File   string
	Line   int // the header's line: 1, or 2 after Excel's "sep=" line; 0 reads as 1
	Reason string
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("%s: line %d: header: %s", e.File, max(e.Line, 1), e.Reason)
}

// Format is how the reader took a file: its encoding and delimiter, and
// where the delimiter came from.
type Format struct {
	Encoding  string `json:"encoding"` // one of the Encoding constants
	Delimiter rune   `json:"-"`
	// DelimiterName is the delimiter as a person writes it: comma,
	// semicolon, tab, pipe, or the character.
	DelimiterName string `json:"delimiter"`
	// DelimiterFrom says who chose it: "config" (the Delimiter field, the
	// --delimiter flag), "sep line" (Excel's "sep=;" first line) or
	// "header" (detected from the header line).
	DelimiterFrom string `json:"delimiterFrom"`
}

func (f Format) String() string {
	from := map[string]string{"config": "as configured", "sep line": "from its sep= line", "header": "detected from the header"}[f.DelimiterFrom]
	return fmt.Sprintf("%s, %s-separated, %s", f.Encoding, f.DelimiterName, from)
}

func delimiterName(d rune) string {
	switch d {
	case ',':
		return "comma"
	case ';':
		return "semicolon"
	case '\t':
		return "tab"
	case '|':
		return "pipe"
	}
	return string(d)
}

// readFormat settles the delimiter: the configured one, Excel's "sep=" first
// line (taken off the input, and counted in the line offset it returns), or
// one detected from the header line.
func readFormat(text *textInput, cfg Config) (Format, int, error) {
	format := Format{Encoding: text.encoding, Delimiter: cfg.Delimiter, DelimiterFrom: "config"}
	lineOffset := 0
	first := peekLine(text.text)
	if d, ok := sepLine(first); ok {
		if cfg.Delimiter != 0 && cfg.Delimiter != d {
			return Format{}, 0, &HeaderError{File: cfg.SourceFile, Reason: fmt.Sprintf("the file's first line says sep=%c, but the delimiter asked for is %q; drop --delimiter", d, cfg.Delimiter)}
		}
		text.text.Discard(len(first))
		format.Delimiter, format.DelimiterFrom = d, "sep line"
		lineOffset = 1
	} else if cfg.Delimiter == 0 {
		format.Delimiter, format.DelimiterFrom = detectDelimiter(first, cfg.Columns), "header"
	}
	format.DelimiterName = delimiterName(format.Delimiter)
	return format, lineOffset, nil
}

// mapHeader names um's columns as csvRow's tags name them (see mapColumns)
// and checks that the header has one email and one type column, at most
// one customerId. It returns the column of each name.
func mapHeader(um *gocsv.Unmarshaller, file string, columns map[string]string, format Format, headerErr func(string) error) (map[string]int, error) {
	for i, h := range um.Headers {
		if reason := notUTF8(fmt.Sprintf("column %d of the header", i+1), h); reason != "" {
			return nil, headerErr(reason)
		}
	}
	raw := slices.Clone(um.Headers)
	names, err := mapColumns(raw, columns)
	if err != nil {
		return nil, headerErr(err.Error())
	}
	if err := um.RenormalizeHeaders(func([]string) []string { return names }); err != nil {
		return nil, fmt.Errorf("%s: header: %w", file, err)
	}
	cols := map[string]int{}
	for i, h := range names {
		if j, twice := cols[h]; twice && (h == "email" || h == "type" || h == "customerid") {
			return nil, headerErr(fmt.Sprintf("columns %s and %s are both the %s column", quote(raw[j]), quote(raw[i]), h))
		}
		cols[h] = i
	}
	var missing []string
	for _, c := range []string{"email", "type"} {
		if _, ok := cols[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		hint := "; name them with --map, e.g. --map email=\"E-mail Address\",type=Kind"
		if len(raw) == 1 {
			hint = "; is --delimiter right?"
		}
		return nil, headerErr(fmt.Sprintf("no %s column (found %s; read as %s)%s",
			strings.Join(missing, " or "), quoteList(raw), format, hint))
	}
	return cols, nil
}

// peekLine returns the input's first line, its line end included, without
// taking it; at most the reader's buffer of it.
func peekLine(br *bufio.Reader) []byte {
	for n, from := 1, 0; ; {
		b, err := br.Peek(n)
		if i := bytes.IndexByte(b[from:], '\n'); i >= 0 {
			return b[:from+i+1]
		}
		if err != nil || len(b) == br.Size() {
			return b
		}
		from = len(b)
		n = min(max(br.Buffered(), len(b)+1), br.Size())
	}
}

// sepLine reads Excel's "sep=;" first line, which names the delimiter.
func sepLine(line []byte) (rune, bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if len(s) < 5 || !strings.EqualFold(s[:4], "sep=") {
		return 0, false
	}
	d, size := utf8.DecodeRuneInString(s[4:])
	if 4+size != len(s) || d == utf8.RuneError || d == '"' || !validDelimiter(d) {
		return 0, false
	}
	return d, true
}

// validDelimiter is a delimiter encoding/csv takes.
func validDelimiter(r rune) bool {
	return r != 0 && r != '"' && r != '\r' && r != '\n' && utf8.ValidRune(r) && r != utf8.RuneError
}

// detectDelimiter picks, of the delimiters spreadsheets write, the one by
// which header splits into the most of our columns, then into the most
// columns; comma when none splits it.
func detectDelimiter(header []byte, columns map[string]string) rune {
	best, bestOurs, bestFields := ',', -1, 0
	for _, d := range []rune{',', ';', '\t', '|'} {
		cr := csv.NewReader(bytes.NewReader(header))
		cr.Comma = d
		cr.LazyQuotes = true
		fields, _ := cr.Read()
		names, err := mapColumns(fields, columns)
		if err != nil {
			names = normalizeHeaders(fields)
		}
		ours := 0
		for _, h := range names {
			if h == "email" || h == "type" || h == "customerid" {
				ours++
			}
		}
		if ours > bestOurs || ours == bestOurs && len(fields) > bestFields {
			best, bestOurs, bestFields = d, ours, len(fields)
		}
	}
	return best
}

// normalizeHeaders matches header names loosely: case, spaces, '-' and '_'
// do not count ("Customer ID" and "customer_id" are "customerid").
func normalizeHeaders(h []string) []string {
	out := make([]string, len(h))
	for i, s := range h {
		out[i] = normalizeHeader(s)
	}
	return out
}

var headerSeparators = strings.NewReplacer(" ", "", "_", "", "-", "")

func normalizeHeader(s string) string {
	s = headerSeparators.Replace(strings.ToLower(strings.TrimSpace(s)))
	if s == "customertype" {
		s = "type"
	}
	return s
}

// mapColumns names the file's columns (raw, as written) as csvRow's tags
// name them: each of columns (our name -> the file's) first, then by
// normalizeHeaders. A column that would be ours by its name but is not
// the one mapped is left out: mapping email to "Work Email" ignores
// "Email".
func mapColumns(raw []string, columns map[string]string) ([]string, error) {
	names := normalizeHeaders(raw)
	mapped := make([]bool, len(raw))
	for ours, theirs := range columns {
		key := normalizeHeader(ours)
		if key != "email" && key != "type" && key != "customerid" {
			return nil, fmt.Errorf("cannot map %s: the columns are email, type and customerId", quote(ours))
		}
		found := false
		for i, h := range raw {
			if normalizeHeader(h) == normalizeHeader(theirs) {
				names[i], mapped[i], found = key, true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("no column %s to take as %s (found %s)", quote(theirs), key, quoteList(raw))
		}
	}
	for i := range names {
		if !mapped[i] && columns != nil {
			for ours := range columns {
				if names[i] == normalizeHeader(ours) {
					names[i] = "\x00unmapped " + raw[i]
				}
			}
		}
	}
	return names, nil
}

// quoteList quotes a header's names for a message, within about 1 KiB.
func quoteList(h []string) string {
	const most = 16
	q := make([]string, 0, min(len(h), most)+1)
	for i, s := range h {
		if i == most {
			q = append(q, fmt.Sprintf("and %d more", len(h)-most))
			break
		}
		q = append(q, quote(s))
	}
	return strings.Join(q, ", ")
}

// quote quotes s for a message, cut to at most 48 bytes of its text.
func quote(s string) string { return fmt.Sprintf("%q", clip(s, 48)) }

// clip cuts s to at most n bytes, on a character boundary, and says by
// how much it was cut: messages quote what a file holds, and a file can
// hold anything.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}
