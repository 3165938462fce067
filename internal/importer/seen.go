package importer

import "hash/maphash"

// seenSet remembers the keys of a file's rows to spot repeats. It keeps a
// 64-bit hash and the line of each key, not the key, in open-addressing
// tables of two flat slices (12 bytes a slot, nothing for the garbage
// collector to scan), about 21 MiB for a million rows. The tables are 256
// shards, picked by the hash's top byte, that grow by half when 4/5 full:
// growing one shard copies a 256th of the set, so there is never an old
// and a new copy of the whole set in memory at once. Two different keys
// sharing a hash (odds near 1 in 10^7 for a million rows) would report the
// later row as a duplicate: it is never sent twice, and its reason names
// the line it is taken to repeat.
type seenSet struct {
	seed   maphash.Seed
	shards [256]seenShard
}

type seenShard struct {
	hash  []uint64 // 0 marks an empty slot
	line  []int32
	count int
}

func newSeenSet() *seenSet {
	s := &seenSet{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i] = seenShard{hash: make([]uint64, 16), line: make([]int32, 16)}
	}
	return s
}

// add records key at line, or returns the line that had it first.
func (s *seenSet) add(key string, line int) (first int, dup bool) {
	h := maphash.String(s.seed, key) | 1 // never 0, the empty mark
	sh := &s.shards[h>>56]
	if l, ok := sh.insert(h, int32(line)); !ok {
		return int(l), true
	}
	sh.count++
	if sh.count*5 > len(sh.hash)*4 {
		sh.grow()
	}
	return 0, false
}

// insert puts h at its slot, or returns the line already there. The slot is
// h's low 32 bits scaled to the table's size.
func (sh *seenShard) insert(h uint64, line int32) (int32, bool) {
	n := uint64(len(sh.hash))
	for i := (h & 0xffffffff) * n >> 32; ; i++ {
		if i == n {
			i = 0
		}
		switch sh.hash[i] {
		case 0:
			sh.hash[i], sh.line[i] = h, line
			return 0, true
		case h:
			return sh.line[i], false
		}
	}
}

func (sh *seenShard) grow() {
	oldHash, oldLine := sh.hash, sh.line
	n := len(oldHash) + len(oldHash)/2
	sh.hash, sh.line = make([]uint64, n), make([]int32, n)
	for i, h := range oldHash {
		if h != 0 {
			sh.insert(h, oldLine[i])
		}
	}
}
