package importer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// DefaultMaxLineBytes is the default of Config.MaxLineBytes.
const DefaultMaxLineBytes = 64 << 10

// lineLimiter hands the CSV reader its text one line at a time and at
// most max bytes of one row, whatever the file holds: the CSV reader
// keeps a whole row in memory, and a row's fields go to the ledger. A row
// that reaches max is cut: the rest of its line is skipped without being
// kept, the CSV reader gets a *lineTooLongError for the row, and reading
// goes on with the next line.
//
// A row ends at a line end outside quotes; the limiter counts quotes to
// know (an odd count is an open quoted field, which goes on over the line
// end). Where that guess and the CSV reader differ (a stray quote), the
// CSV reader has ended the row, and rowReader says so by rowEnded.
// Handing out one line at a time is what makes that exact: when the CSV
// reader returns a row, it holds nothing of the next one.
type lineLimiter struct {
	br        *bufio.Reader
	max       int
	span      int  // bytes of the current row handed out
	oddQuotes bool // the current row holds an odd number of quotes so far
	lines     int  // line ends handed out
	rowLine   int  // line ends handed out before the current row
}

// lineTooLongError is a row cut by a lineLimiter. Line counts from the
// first line lineLimiter saw.
type lineTooLongError struct {
	Line  int   // where the row starts
	Lines int   // the lines it was read over, the cut one included
	Size  int64 // its bytes up to the end of the line where it was cut
	Max   int
}

func (e *lineTooLongError) Error() string {
	if e.Lines <= 1 {
		return fmt.Sprintf("the line is %d bytes long, over the limit of %d (--max-line-bytes); it was skipped", e.Size, e.Max)
	}
	return fmt.Sprintf(`the row runs over %d lines and more than %d bytes, over the limit of %d (--max-line-bytes): is a quote (") left open? It was skipped`,
		e.Lines, e.Size, e.Max)
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if l.span >= l.max {
		return 0, l.cut()
	}
	if l.br.Buffered() == 0 {
		if _, err := l.br.Peek(1); err != nil {
			return 0, err
		}
	}
	b, _ := l.br.Peek(l.br.Buffered())
	n := min(len(b), len(p), l.max-l.span)
	if i := bytes.IndexByte(b[:n], '\n'); i >= 0 {
		n = i + 1
	}
	copy(p, b[:n])
	l.br.Discard(n)
	l.span += n
	if bytes.Count(p[:n], []byte{'"'})%2 == 1 {
		l.oddQuotes = !l.oddQuotes
	}
	if p[n-1] == '\n' {
		l.lines++
		if !l.oddQuotes {
			l.rowEnded()
		}
	}
	return n, nil
}

// rowEnded starts a new row: the CSV reader has returned one.
func (l *lineLimiter) rowEnded() {
	l.span, l.oddQuotes, l.rowLine = 0, false, l.lines
}

// cut skips the rest of the line where the current row reached max, and
// returns the error that refuses the row, or io.EOF when the input ended
// at exactly max bytes.
func (l *lineLimiter) cut() error {
	size := int64(l.span)
	for {
		b, err := l.br.ReadSlice('\n')
		size += int64(len(b))
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && size == int64(l.span) {
			return io.EOF
		}
		if err != nil && err != io.EOF {
			return err
		}
		break
	}
	e := &lineTooLongError{Line: l.rowLine + 1, Lines: l.lines - l.rowLine + 1, Size: size, Max: l.max}
	l.lines++
	l.rowEnded()
	return e
}
