package importer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"

	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// The encodings the reader takes, as Format.Encoding names them. A file in
// any other encoding is refused, row by row, with a message that says so:
// guessing a legacy code page would silently turn a letter of a
// customer's email into another.
const (
	EncodingUTF8    = "UTF-8"
	EncodingUTF8BOM = "UTF-8 with BOM"
	EncodingUTF16LE = "UTF-16LE" // Excel's "Unicode Text", with its BOM
	EncodingUTF16BE = "UTF-16BE"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// textInput is the input file as UTF-8 text.
type textInput struct {
	raw      *countingReader
	rawBuf   *bufio.Reader
	text     *bufio.Reader // the decoded text: rawBuf itself unless UTF-16
	encoding string
}

// decodeInput finds in's encoding by its byte-order mark and returns its
// text. Without a mark the text is taken as UTF-8 as it is, unchecked:
// rows are checked one by one, so that one stray byte costs one row.
func decodeInput(in io.Reader, file string) (*textInput, error) {
	cr := &countingReader{r: in}
	rb := bufio.NewReaderSize(cr, 64<<10)
	t := &textInput{raw: cr, rawBuf: rb, text: rb, encoding: EncodingUTF8}
	head, _ := rb.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE, 0, 0}), bytes.HasPrefix(head, []byte{0, 0, 0xFE, 0xFF}):
		return nil, &HeaderError{File: file, Reason: "the file is in UTF-32 (by its byte-order mark); " + saveAsUTF8}
	case bytes.HasPrefix(head, utf8BOM):
		rb.Discard(len(utf8BOM))
		t.encoding = EncodingUTF8BOM
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		t.decodeUTF16(unicode.LittleEndian, EncodingUTF16LE)
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		t.decodeUTF16(unicode.BigEndian, EncodingUTF16BE)
	default:
		// Text never holds a NUL; UTF-16 without its mark has one in every
		// other byte of plain text. Only what is read already is looked at:
		// the input may be a stream that the import must not read ahead of
		// its header.
		if sample, _ := rb.Peek(rb.Buffered()); bytes.IndexByte(sample, 0) >= 0 {
			return nil, &HeaderError{File: file, Reason: "the file holds NUL bytes: it is UTF-16 without a byte-order mark, or not text; " + saveAsUTF8}
		}
	}
	// Old Mac exports end lines with CR alone, which encoding/csv reads as
	// one long line: such a file (CRs and no LF in what is read already)
	// is read with each CR taken for a line end.
	if t.text == rb {
		if sample, _ := rb.Peek(rb.Buffered()); bytes.IndexByte(sample, '\r') >= 0 && bytes.IndexByte(sample, '\n') < 0 {
			t.text = bufio.NewReaderSize(crLines{rb}, 64<<10)
		}
	}
	return t, nil
}

// crLines reads r with every CR turned into LF.
type crLines struct{ r io.Reader }

func (c crLines) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b == '\r' {
			p[i] = '\n'
		}
	}
	return n, err
}

const saveAsUTF8 = `save it as UTF-8 (Excel: "CSV UTF-8") or as Excel's "Unicode Text", and import it again`

func (t *textInput) decodeUTF16(e unicode.Endianness, name string) {
	dec := unicode.UTF16(e, unicode.ExpectBOM).NewDecoder()
	t.text = bufio.NewReaderSize(transform.NewReader(t.rawBuf, dec), 64<<10)
	t.encoding = name
}

// consumed is about how many bytes of the input the text taken from
// t.text so far came from: exact for UTF-8, within the decoder's buffers
// for UTF-16.
func (t *textInput) consumed() int64 {
	n := t.raw.n - int64(t.rawBuf.Buffered())
	if t.text != t.rawBuf {
		n -= 2 * int64(t.text.Buffered())
	}
	return max(n, 0)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// notUTF8 says where s stops being UTF-8, or returns "" when it is UTF-8.
func notUTF8(what, s string) string {
	if utf8.ValidString(s) {
		return ""
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		i += size
	}
	// The advice first: summaries cut long reasons, and re-saving the whole
	// file, not fixing this row, is what the operator must do.
	return fmt.Sprintf("%s is not valid UTF-8: the file is in another encoding, such as Windows-1252 or Latin-1; %s (byte 0x%02X at byte %d)",
		what, saveAsUTF8, s[i], i+1)
}
