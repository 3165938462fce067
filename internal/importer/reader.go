package importer

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

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
	format, lineOffset, err := readFormat(text, cfg)
	if err != nil {
		return nil, err
	}
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
	cols, err := mapHeader(um, file, cfg.Columns, format, headerErr)
	if err != nil {
		return nil, err
	}
	_, hasCustomerID := cols["customerid"]
	_, hasFile := cols["file"]
	_, hasLine := cols["line"]
	return &rowReader{file: file, csv: cr, um: um, hasCustomerID: hasCustomerID, tap: tap, recordEnd: cr.InputOffset(),
		text: text, format: format, lineOffset: lineOffset, limit: limit,
		failuresFile: hasFile && hasLine}, nil
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
