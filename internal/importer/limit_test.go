package importer

import (
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// repeatReader reads n bytes of c without holding them.
type repeatReader struct {
	n     int64
	chunk []byte
}

func newRepeatReader(c byte, n int64) *repeatReader {
	return &repeatReader{n: n, chunk: []byte(strings.Repeat(string(c), 32<<10))}
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(int64(len(p)), r.n)], r.chunk)
	r.n -= int64(k)
	return k, nil
}

// TestRowReader_SkipsA200MBLineInBoundedMemory: a 200 MB line is one
// invalid row with its size, the rows after it are read, and reading it
// allocates a few buffers, not the line. Not parallel: it measures the
// process's allocations.
func TestRowReader_SkipsA200MBLineInBoundedMemory(t *testing.T) {
	const size = 200 << 20
	in := io.MultiReader(
		strings.NewReader("email,type\na@example.com,INDIVIDUAL\n"),
		newRepeatReader('x', size),
		strings.NewReader("\nb@example.com,BUSINESS\n"),
	)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rr, err := newRowReader(in, Config{SourceFile: "f.csv"})
	if err != nil {
		t.Fatal(err)
	}
	var got []record
	for {
		rec, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rec)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("reading a 200 MB line allocated %d MiB, want at most 8", n>>20)
	}
	if len(got) != 3 || got[0].Email != "a@example.com" || got[2].Email != "b@example.com" || got[2].Line != 4 {
		t.Fatalf("records = %+v, want a@, the long line, b@ at line 4", got)
	}
	_, rowErr := validate("f.csv", got[1])
	if want := "f.csv:3: the line is 209715201 bytes long, over the limit of 65536 (--max-line-bytes)"; rowErr == nil || !strings.HasPrefix(rowErr.Error(), want) || len(rowErr.Error()) > 1024 {
		t.Errorf("validate(the long line) = %v, want %q...", rowErr, want)
	}
	if n := rr.text.consumed(); n != int64(len("email,type\na@example.com,INDIVIDUAL\n\nb@example.com,BUSINESS\n"))+size {
		t.Errorf("consumed() = %d at the end, want the whole input", n)
	}
}

// TestRowReader_CapsRowsHeaderAndFields: with a small cap, a long header
// is refused with its size; a row at the cap is read, one byte more is
// not; a quote left open is cut at the cap, not at the end of the file,
// and the rows after its line are read.
func TestRowReader_CapsRowsHeaderAndFields(t *testing.T) {
	t.Parallel()
	cfg := Config{SourceFile: "f.csv", MaxLineBytes: 64}
	_, err := newRowReader(strings.NewReader("email,type,"+strings.Repeat("notes", 20)+"\n"), cfg)
	var he *HeaderError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "f.csv: line 1: header: the line is 112 bytes long, over the limit of 64") {
		t.Errorf("newRowReader(long header) err = %v, want a HeaderError with its size", err)
	}

	atCap := "a@example.com,INDIVIDUAL," + strings.Repeat("n", 64-len("a@example.com,INDIVIDUAL,\n")) + "\n"
	data := "email,type,notes\n" + // 1
		atCap + // 2
		"b@example.com,INDIVIDUAL,x" + atCap + // 3
		"c@example.com,BUSINESS,\"open\n" + // 4
		strings.Repeat("d@example.com,BUSINESS,\n", 4) + // 5-8: cut inside line 6
		"e@example.com,BUSINESS,\n" + // 9
		"f@example.com,INDIVIDUAL," + strings.Repeat("n", 100) // 10, no line end
	rr, err := newRowReader(strings.NewReader(data), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		rec, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s := rec.Email
		if rec.Err != nil {
			s = rec.Err.Error()
		}
		got = append(got, strconv.Itoa(rec.Line)+" "+s)
	}
	want := []string{
		"2 a@example.com",
		"3 the line is 90 bytes long, over the limit of 64 (--max-line-bytes); it was skipped",
		`4 the row runs over 3 lines and more than 77 bytes, over the limit of 64 (--max-line-bytes): is a quote (") left open? It was skipped`,
		"7 d@example.com",
		"8 d@example.com",
		"9 e@example.com",
		"10 the line is 125 bytes long, over the limit of 64 (--max-line-bytes); it was skipped",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestValidate_ReasonsAreShortWhateverTheRowHolds: a row's reason quotes
// at most a little of what its fields hold.
func TestValidate_ReasonsAreShortWhateverTheRowHolds(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("\u200b", 20<<10)
	for _, rec := range []record{
		{Line: 2, Email: "a@example.com", Type: big},
		{Line: 2, Email: "a@example.com", Type: "INDIVIDUAL", CustomerID: big},
		{Line: 2, Email: big + "@example.com", Type: "INDIVIDUAL"},
		{Line: 2, Email: strings.Repeat("\x01", 250) + "@x.com", Type: "INDIVIDUAL"},
	} {
		_, rowErr := validate("f.csv", rec)
		if rowErr == nil || len(rowErr.Error()) > 1024 {
			t.Errorf("validate(%.40q...) = %d bytes of reason, want an error of at most 1 KiB", rec.Email+rec.Type+rec.CustomerID, len(rowErr.Error()))
		}
	}
}
