package importer

import (
	"bufio"
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
	// them): importing the row supersedes the issue recorded there.
	OriginFile string `csv:"file"`
	OriginLine string `csv:"line"`
}

// HeaderError is a file that cannot be imported at all: no header, or no
// email or type column.
type HeaderError struct {
	File   string
	Reason string
}

func (e *HeaderError) Error() string { return fmt.Sprintf("%s: line 1: header: %s", e.File, e.Reason) }

// record is one data row as read, before validation. Err is set when the
// line could not be read as a row (bad quoting, wrong field count).
type record struct {
	Line       int
	Email      string
	Type       string
	CustomerID string
	OriginFile string
	OriginLine int
	Err        error
}

// rowReader streams records out of a CSV file through gocsv.
type rowReader struct {
	file          string
	csv           *csv.Reader
	um            *gocsv.Unmarshaller
	hasCustomerID bool
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

func newRowReader(in io.Reader, file string, delimiter rune) (*rowReader, error) {
	br := bufio.NewReaderSize(in, 64<<10)
	if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == string(utf8BOM) {
		br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.Comma = delimiter
	cr.FieldsPerRecord = 0 // every row must have the header's field count
	cr.ReuseRecord = true
	um, err := gocsv.NewUnmarshaller(cr, csvRow{})
	if errors.Is(err, io.EOF) {
		return nil, &HeaderError{File: file, Reason: "the file is empty; want a header line with email and type columns"}
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, &HeaderError{File: file, Reason: pe.Err.Error()}
		}
		return nil, fmt.Errorf("%s: header: %w", file, err)
	}
	if err := um.RenormalizeHeaders(normalizeHeaders); err != nil {
		return nil, fmt.Errorf("%s: header: %w", file, err)
	}
	cols := map[string]bool{}
	for _, h := range um.Headers {
		if cols[h] && (h == "email" || h == "type" || h == "customerid") {
			return nil, &HeaderError{File: file, Reason: fmt.Sprintf("column %q appears twice", h)}
		}
		cols[h] = true
	}
	var missing []string
	for _, c := range []string{"email", "type"} {
		if !cols[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, &HeaderError{File: file, Reason: fmt.Sprintf("no %s column (found %s); is --delimiter right?",
			strings.Join(missing, " or "), quoteList(um.Headers))}
	}
	return &rowReader{file: file, csv: cr, um: um, hasCustomerID: cols["customerid"]}, nil
}

// normalizeHeaders matches header names loosely: case, spaces, '-' and '_'
// do not count ("Customer ID" and "customer_id" are "customerid").
func normalizeHeaders(h []string) []string {
	out := make([]string, len(h))
	for i, s := range h {
		s = strings.ToLower(strings.TrimSpace(s))
		s = strings.NewReplacer(" ", "", "_", "", "-", "").Replace(s)
		if s == "customertype" {
			s = "type"
		}
		out[i] = s
	}
	return out
}

func quoteList(h []string) string {
	q := make([]string, len(h))
	for i, s := range h {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// next returns the next non-blank record, or io.EOF. A line that cannot be
// read as a row comes back as a record with Err set; reading goes on after it.
func (r *rowReader) next() (record, error) {
	for {
		v, unmatched, err := r.um.ReadUnmatched()
		if errors.Is(err, io.EOF) {
			return record{}, io.EOF
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line := pe.StartLine
				if line == 0 {
					line = pe.Line
				}
				reason := pe.Err.Error()
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					reason = fmt.Sprintf("has a different number of fields than the header (%d)", len(r.um.Headers))
				}
				return record{Line: line, Err: errors.New(reason)}, nil
			}
			return record{}, fmt.Errorf("%s: %w", r.file, err)
		}
		line, _ := r.csv.FieldPos(0)
		row := v.(csvRow)
		rec := record{Line: line, Email: row.Email, Type: row.Type, CustomerID: row.CustomerID, OriginFile: strings.TrimSpace(row.OriginFile)}
		rec.OriginLine, _ = strconv.Atoi(strings.TrimSpace(row.OriginLine))
		if blank(rec, unmatched) {
			continue // spreadsheets export empty rows as ",,"
		}
		return rec, nil
	}
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
