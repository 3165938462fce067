package importer

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gocarina/gocsv"
)

// csvRow is one CSV record as gocsv decodes it. Header names are matched
// after normalizeHeader, so "Email ", "E-mail" and "EMAIL" all fill Email.
type csvRow struct {
	Email      string `csv:"email"`
	Type       string `csv:"type"`
	CustomerID string `csv:"customerid"`
	// Where a row of a failures file came from (bulkcreate failures writes
	// them): importing the row supersedes the issue recorded there, if that
	// issue's digest (ledger.IssueDigest) is still OriginIssue. A failures
	// file written before the issue column has none: then any issue there.
	OriginFile  string `csv:"file"`
	OriginLine  string `csv:"line"`
	OriginIssue string `csv:"issue"`
}

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

// record is one data row as read, before validation. Err is set when the
// line could not be read as a row (bad quoting, wrong field count).
type record struct {
	Line        int
	Email       string
	Type        string
	CustomerID  string
	OriginFile  string
	OriginLine  int
	OriginIssue string // the digest of the issue at OriginFile:OriginLine it fixes
	Err         error
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

// rowReader streams records out of a CSV file through gocsv.
type rowReader struct {
	file          string
	csv           *csv.Reader
	um            *gocsv.Unmarshaller
	hasCustomerID bool
	tap           *recordTap
	recordEnd     int64 // the input offset where the last record ended
	text          *textInput
	format        Format
	lineOffset    int // lines before the header that csv does not see (a sep= line)
	limit         *lineLimiter
	// failuresFile: the file has the origin columns (file, line) that
	// bulkcreate failures writes, and its cells were written
	// SpreadsheetSafe.
	failuresFile bool
}

// Format is how the reader took the file.
func (r *rowReader) Format() Format { return r.format }

func newRowReader(in io.Reader, cfg Config) (*rowReader, error) {
	file := cfg.SourceFile
	text, err := decodeInput(in, file)
	if err != nil {
		return nil, err
	}
	format := Format{Encoding: text.encoding, Delimiter: cfg.Delimiter, DelimiterFrom: "config"}
	lineOffset := 0
	first := peekLine(text.text)
	if d, ok := sepLine(first); ok {
		if cfg.Delimiter != 0 && cfg.Delimiter != d {
			return nil, &HeaderError{File: file, Reason: fmt.Sprintf("the file's first line says sep=%c, but the delimiter asked for is %q; drop --delimiter", d, cfg.Delimiter)}
		}
		text.text.Discard(len(first))
		format.Delimiter, format.DelimiterFrom = d, "sep line"
		lineOffset = 1
	} else if cfg.Delimiter == 0 {
		format.Delimiter, format.DelimiterFrom = detectDelimiter(first, cfg.Columns), "header"
	}
	format.DelimiterName = delimiterName(format.Delimiter)
	headerErr := func(reason string) error { return &HeaderError{File: file, Line: 1 + lineOffset, Reason: reason} }

	maxLine := cfg.MaxLineBytes
	if maxLine <= 0 {
		maxLine = DefaultMaxLineBytes
	}
	limit := &lineLimiter{br: text.text, max: maxLine}
	tap := &recordTap{}
	cr := csv.NewReader(io.TeeReader(limit, tap))
	cr.Comma = format.Delimiter
	cr.FieldsPerRecord = 0 // every row must have the header's field count
	cr.ReuseRecord = true
	um, err := gocsv.NewUnmarshaller(cr, csvRow{})
	if errors.Is(err, io.EOF) {
		return nil, headerErr("the file is empty; want a header line with email and type columns")
	}
	var tooLong *lineTooLongError
	if errors.As(err, &tooLong) {
		return nil, headerErr(tooLong.Error())
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, headerErr(pe.Err.Error())
		}
		return nil, fmt.Errorf("%s: header: %w", file, err)
	}
	limit.rowEnded()
	for i, h := range um.Headers {
		if reason := notUTF8(fmt.Sprintf("column %d of the header", i+1), h); reason != "" {
			return nil, headerErr(reason)
		}
	}
	raw := slices.Clone(um.Headers)
	names, err := mapColumns(raw, cfg.Columns)
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
	_, hasCustomerID := cols["customerid"]
	_, hasFile := cols["file"]
	_, hasLine := cols["line"]
	return &rowReader{file: file, csv: cr, um: um, hasCustomerID: hasCustomerID, tap: tap, recordEnd: cr.InputOffset(),
		text: text, format: format, lineOffset: lineOffset, limit: limit,
		failuresFile: hasFile && hasLine}, nil
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

// next returns the next non-blank record, or io.EOF. A line that cannot be
// read as a row comes back as a record with Err set; reading goes on after it.
func (r *rowReader) next() (record, error) {
	for {
		v, unmatched, err := r.um.ReadUnmatched()
		r.limit.rowEnded()
		if errors.Is(err, io.EOF) {
			return record{}, io.EOF
		}
		if tooLong := (*lineTooLongError)(nil); errors.As(err, &tooLong) {
			r.tap.take(r.recordEnd, r.csv.InputOffset())
			r.recordEnd = r.csv.InputOffset()
			return record{Line: tooLong.Line + r.lineOffset, Err: tooLong}, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line := pe.StartLine
				if line == 0 {
					line = pe.Line
				}
				rec := record{Line: line + r.lineOffset, Err: pe.Err}
				switch {
				case errors.Is(pe.Err, csv.ErrBareQuote):
					rec.Err = errors.New(`has a quote (") inside a field that is not in quotes: remove it, or put the field in quotes and write the quote twice ("")`)
				case errors.Is(pe.Err, csv.ErrQuote):
					rec.Err = errors.New(`has a field in quotes with a stray or missing quote ("): inside quotes, a quote is written twice ("")`)
				}
				raw := r.tap.take(r.recordEnd, r.csv.InputOffset())
				r.recordEnd = r.csv.InputOffset()
				switch {
				case errors.Is(pe.Err, csv.ErrFieldCount):
					// gocsv drops the fields of such a record: read it again
					// on its own, so that the failures file keeps them.
					rec.Err = fmt.Errorf("has a different number of fields than the header (%d)", len(r.um.Headers))
					if fields, err := r.fields(raw, false); err == nil {
						rec.Err = fmt.Errorf("has %s where the header has %d", plural(len(fields), "field"), len(r.um.Headers))
						r.fill(&rec, fields)
					}
				case errors.Is(pe.Err, csv.ErrBareQuote) || errors.Is(pe.Err, csv.ErrQuote):
					// The line's fields as they would be with its quotes
					// taken literally, for the failures file, where the
					// operator mends them. A quoted field left open runs
					// on past its line, or takes the rest of it (the
					// count of fields then differs): then no guess.
					if line := bytes.TrimRight(raw, "\r\n"); !bytes.ContainsAny(line, "\r\n") {
						if fields, err := r.fields(line, true); err == nil && len(fields) == len(r.um.Headers) {
							r.fill(&rec, fields)
						}
					}
				}
				return rec, nil
			}
			return record{}, fmt.Errorf("%s: %w", r.file, err)
		}
		r.recordEnd = r.csv.InputOffset()
		r.tap.forget(r.recordEnd)
		line, _ := r.csv.FieldPos(0)
		row := v.(csvRow)
		if r.failuresFile {
			for _, f := range []*string{&row.Email, &row.Type, &row.CustomerID, &row.OriginFile, &row.OriginLine, &row.OriginIssue} {
				*f = fromSpreadsheetSafe(*f)
			}
		}
		rec := record{Line: line + r.lineOffset, Email: row.Email, Type: row.Type, CustomerID: row.CustomerID,
			OriginFile: strings.TrimSpace(row.OriginFile), OriginIssue: strings.TrimSpace(row.OriginIssue)}
		rec.OriginLine, _ = strconv.Atoi(strings.TrimSpace(row.OriginLine))
		if blank(rec, unmatched) {
			continue // spreadsheets export empty rows as ",,"
		}
		for _, f := range []struct{ name, value string }{
			{"the email", rec.Email}, {"the type", rec.Type}, {"the customerId", rec.CustomerID}, {"the file column", rec.OriginFile},
		} {
			if reason := notUTF8(f.name, f.value); reason != "" {
				rec.Err = errors.New(reason)
				break
			}
		}
		return rec, nil
	}
}

// fields reads raw, one record's text, as a record of any length; with
// lazyQuotes, a quote where one cannot be is taken as text.
func (r *rowReader) fields(raw []byte, lazyQuotes bool) ([]string, error) {
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.Comma = r.csv.Comma
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = lazyQuotes
	return cr.Read()
}

// fill sets rec's fields from a record's fields, by the header's columns.
func (r *rowReader) fill(rec *record, fields []string) {
	for i, h := range r.um.Headers {
		if i >= len(fields) {
			break
		}
		v := fields[i]
		if r.failuresFile {
			v = fromSpreadsheetSafe(v)
		}
		switch h {
		case "email":
			rec.Email = v
		case "type":
			rec.Type = v
		case "customerid":
			rec.CustomerID = v
		}
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// recordTap keeps the bytes the CSV reader has taken from its input since
// the end of the last record (and a little more, dropped in bulk), so that
// a record refused for its number of fields can be read again on its own.
// It holds at most about 64 KiB plus one record and the reader's buffer.
type recordTap struct {
	buf  []byte
	base int64 // the input offset of buf[0]
}

func (t *recordTap) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// take returns a copy of the input from offset from to offset to, and
// forgets what comes before to.
func (t *recordTap) take(from, to int64) []byte {
	var out []byte
	if t.base <= from && from <= to && to <= t.base+int64(len(t.buf)) {
		out = bytes.Clone(t.buf[from-t.base : to-t.base])
	}
	t.forget(to)
	return out
}

// forget drops the input before offset off once that is 64 KiB or more.
func (t *recordTap) forget(off int64) {
	n := off - t.base
	if n < 64<<10 || n > int64(len(t.buf)) {
		return
	}
	t.buf = t.buf[:copy(t.buf, t.buf[n:])]
	t.base = off
}

func blank(r record, extra map[string]string) bool {
	if strings.TrimSpace(r.Email+r.Type+r.CustomerID) != "" {
		return false
	}
	for _, v := range extra {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}
