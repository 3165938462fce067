package importer

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/bulkcreate/bulkcreate/internal/ledger"
	"github.com/bulkcreate/bulkcreate/internal/row"
)

// memoryStore is the dry run's store. It reads what earlier runs did
// through base (the ledger; nil: nothing) and writes nothing there: what the
// run would record stays in memory, and only its plan is kept, so that the
// rows of a later batch meet the rows an earlier one would send, as in a
// real run they meet their in-flight marks. Safe for concurrent use.
type memoryStore struct {
	base Store
	plan *memoryPlan // nil: nothing is kept (a file without a customerId column cannot hold both kinds of key)
}

func newMemoryStore(base Store, keepPlan bool) *memoryStore {
	m := &memoryStore{base: base}
	if keepPlan {
		m.plan = &memoryPlan{seed: maphash.MakeSeed(), rows: map[uint64]uint64{}}
	}
	return m
}

func (m *memoryStore) Lookup(ctx context.Context, target string, keys []string) (map[string]ledger.Prior, error) {
	out := map[string]ledger.Prior{}
	if m.base != nil {
		var err error
		if out, err = m.base.Lookup(ctx, target, keys); err != nil {
			return nil, err
		}
	}
	if m.plan != nil {
		for _, k := range keys {
			if email, ok := strings.CutPrefix(k, "email:"); ok {
				if p, ok := m.plan.find(email, false); ok {
					out[k] = p
				}
			}
		}
	}
	return out, nil
}

func (m *memoryStore) LookupByEmail(ctx context.Context, target string, emails []string) (map[string]ledger.Prior, error) {
	out := map[string]ledger.Prior{}
	if m.base != nil {
		var err error
		if out, err = m.base.LookupByEmail(ctx, target, emails); err != nil {
			return nil, err
		}
	}
	if m.plan != nil {
		for _, e := range emails {
			if p, ok := m.plan.find(e, true); ok {
				out[e] = p
			}
		}
	}
	return out, nil
}

// AssignsIDs is what base says; a dry run sends nothing, so it learns
// nothing new.
func (m *memoryStore) AssignsIDs(ctx context.Context, target string) (bool, error) {
	if m.base == nil {
		return false, nil
	}
	return m.base.AssignsIDs(ctx, target)
}

// KeepsIDs is what base says.
func (m *memoryStore) KeepsIDs(ctx context.Context, target string) (bool, error) {
	if m.base == nil {
		return false, nil
	}
	return m.base.KeepsIDs(ctx, target)
}

// StartRun starts a run that takes no lock: it writes nothing.
func (m *memoryStore) StartRun(context.Context, ledger.RunInfo) (Run, error) {
	return memoryRun{m}, nil
}

// memoryRun is a dry run's Run: marks go to the plan, and nothing else is
// kept (the importer keeps the reasons of rows not sent for its summary).
// A dry run sends nothing, so no row is recorded, released or marked again.
type memoryRun struct{ m *memoryStore }

func (r memoryRun) MarkInFlightCommitted(_ context.Context, sends []ledger.Send) (Pending, error) {
	if r.m.plan != nil {
		for _, s := range sends {
			r.m.plan.add(s)
		}
	}
	return durable{}, nil
}

func (memoryRun) MarkInFlight(context.Context, ledger.Send) error                      { return nil }
func (memoryRun) Record(context.Context, ledger.Outcome) error                         { return nil }
func (memoryRun) Release(context.Context, string, *ledger.Prior) error                 { return nil }
func (memoryRun) RecordLineIssue(context.Context, ledger.LineIssue) error              { return nil }
func (memoryRun) ClearLineIssue(context.Context, string, int, string) error            { return nil }
func (memoryRun) SetMessage(context.Context, string, string) error                     { return nil }
func (memoryRun) ReplaceWithLineIssue(context.Context, string, ledger.LineIssue) error { return nil }
func (memoryRun) RecordAssignsIDs(context.Context) error                               { return nil }
func (memoryRun) RecordKeepsIDs(context.Context) error                                 { return nil }
func (memoryRun) Finish(context.Context, ledger.RunEnd) error                          { return nil }

// durable is a write with nothing to wait for.
type durable struct{}

func (durable) Durable() error { return nil }

// memoryPlan is every row a dry run plans to send, by its folded email and
// the kind of its key: the first of each, as the store holds them. Each
// costs a map entry of two 8-byte words (the hash of its folded email and
// kind; its line and where its customerId starts in ids) and its customerId
// in ids: 50 to 80 bytes a row for customerIds of 5 to 36 characters.
type memoryPlan struct {
	mu   sync.Mutex
	seed maphash.Seed
	file string
	rows map[uint64]uint64
	ids  []byte // customerIds, each after its length as a uvarint
}

func (p *memoryPlan) hash(email string, idKeyed bool) uint64 {
	h := maphash.String(p.seed, email) &^ 1
	if idKeyed {
		h |= 1
	}
	return h
}

func (p *memoryPlan) add(s ledger.Send) {
	idKeyed := keyKind(s.Key) == "customerId"
	email := strings.TrimPrefix(emailKey(s.Email), "email:")
	h := p.hash(email, idKeyed)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.file = s.SourceFile
	if _, ok := p.rows[h]; ok {
		return // the first row of an email is the one sent
	}
	p.rows[h] = uint64(s.SourceLine)<<32 | uint64(len(p.ids))
	p.ids = binary.AppendUvarint(p.ids, uint64(len(s.CustomerID)))
	p.ids = append(p.ids, s.CustomerID...)
}

// find returns the row planned with folded email and this kind of key, as
// an in-flight mark would show it.
func (p *memoryPlan) find(email string, idKeyed bool) (ledger.Prior, bool) {
	h := p.hash(email, idKeyed)
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.rows[h]
	if !ok {
		return ledger.Prior{}, false
	}
	off := uint32(v)
	n, w := binary.Uvarint(p.ids[off:])
	id := string(p.ids[int(off)+w : int(off)+w+int(n)])
	return ledger.Prior{Status: row.InFlight, Email: email, CustomerIDSent: id,
		SourceFile: p.file, SourceLine: int(v >> 32)}, true
}
