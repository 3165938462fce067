package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"
)

// inputFile is the CSV being imported. A regular file is stat'ed when
// opened, again when its reading reaches the end, and once more when the
// run ends (a small file is read whole at once): a file that changed in
// between was still being written (an export, a copy), and its rows may be
// torn or missing, which the operator must learn although every row read
// may have been created.
type inputFile struct {
	f    *os.File
	name string // as the operator gave it

	mu      sync.Mutex
	opened  fs.FileInfo // nil when not a regular file: nothing to compare
	checked bool
	changed string
}

// openInput opens the CSV to import, refusing what cannot be one: a
// directory would open, then fail at the first read as if the run had begun.
func openInput(path string) (*inputFile, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	in := &inputFile{f: file, name: path}
	fi, err := file.Stat()
	switch {
	case err != nil:
	case fi.IsDir():
		file.Close()
		return nil, fmt.Errorf("%s is a directory; want a CSV file", path)
	case fi.Mode().IsRegular():
		in.opened = fi
	}
	return in, nil
}

func (in *inputFile) Read(p []byte) (int, error) {
	n, err := in.f.Read(p)
	if err == io.EOF {
		in.check()
	}
	return n, err
}

// check compares the file, through its descriptor, with what it was when
// opened: a file replaced by another under its name (an editor's save)
// was read whole as it was, and is not a change.
func (in *inputFile) check() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.checked || in.opened == nil {
		return
	}
	in.checked = true
	in.compare("read", "at its end")
}

// compare sets in.changed when the file differs from what it was when
// opened; during names the stretch, at the moment of the second look.
// in.mu is held.
func (in *inputFile) compare(during, at string) {
	fi, err := in.f.Stat()
	if err != nil {
		in.changed = fmt.Sprintf("%s could not be checked %s: %v", in.name, at, err)
		return
	}
	was := in.opened
	if fi.Size() != was.Size() || !fi.ModTime().Equal(was.ModTime()) {
		in.changed = fmt.Sprintf("%s changed while it was %s (%d bytes, modified %s, when opened; %d bytes, modified %s, %s)",
			in.name, during, was.Size(), stamp(was.ModTime()), fi.Size(), stamp(fi.ModTime()), at)
	}
}

func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000 UTC") }

// Changed says how the file changed while it was read; "" when it did not,
// or was not read to its end, or is not a regular file.
//
// Called when the run has ended, it looks once more: a file read whole
// before it was appended to was still being written all the same.
func (in *inputFile) Changed() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.checked && in.changed == "" {
		in.compare("imported", "at the end of the run")
	}
	return in.changed
}

// Size is the file's size when opened; -1 when it is not a regular file.
func (in *inputFile) Size() int64 {
	if in.opened == nil {
		return -1
	}
	return in.opened.Size()
}

func (in *inputFile) Close() error { return in.f.Close() }
