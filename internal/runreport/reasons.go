package runreport

import (
	"cmp"
	"regexp"
	"slices"
	"strings"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// Reason is one kind of failure and how many rows have it.
type Reason struct {
	Status row.Status
	Reason string // with values and line numbers taken out
	Rows   int
}

// Reasons counts failures by kind. The zero value is ready to use.
type Reasons struct {
	n     map[Reason]int
	total int
}

// Add counts f.
func (r *Reasons) Add(f ledger.Failure) {
	if r.n == nil {
		r.n = map[Reason]int{}
	}
	r.n[Reason{Status: f.Status, Reason: reasonKind(f.Reason, f.SourceFile)}]++
	r.total++
}

// Top returns the k commonest kinds, the commonest first, and the rows of
// the others.
func (r *Reasons) Top(k int) (top []Reason, others int) {
	for kind, n := range r.n {
		kind.Rows = n
		top = append(top, kind)
	}
	slices.SortFunc(top, func(a, b Reason) int {
		return cmp.Or(cmp.Compare(b.Rows, a.Rows), cmp.Compare(a.Status, b.Status), cmp.Compare(a.Reason, b.Reason))
	})
	if len(top) > k {
		for _, x := range top[k:] {
			others += x.Rows
		}
		top = top[:k]
	}
	return top, others
}

var (
	quoted   = regexp.MustCompile(`"(?:[^"]|"")*"|'[^']*'`)
	lineNum  = regexp.MustCompile(`\b(line|lines) \d+`)
	lineHead = regexp.MustCompile(`^:\d+: `)
)

// reasonKind is a row's reason as a kind of failure: without the file and
// line it starts with, and with quoted values (emails, types: personal data
// a forwarded report should not carry) and line numbers replaced, so rows
// failing alike count together.
func reasonKind(reason, file string) string {
	if rest, ok := strings.CutPrefix(reason, file); ok && file != "" && lineHead.MatchString(rest) {
		reason = rest[len(lineHead.FindString(rest)):]
	}
	reason = quoted.ReplaceAllString(reason, `"…"`)
	reason = lineNum.ReplaceAllString(reason, "$1 N")
	if reason == "" {
		return "(no reason recorded)"
	}
	return reason
}
