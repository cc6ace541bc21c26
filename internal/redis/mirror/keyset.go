package mirror

import (
	"encoding/binary"
	"hash/maphash"
	"iter"
	"math"
)

// keySet is a set of strings in one byte arena with an open-addressing
// index.
type keySet struct {
	arena     []byte
	slots     []uint32 // emptySlot, deadSlot or 2 + offset in arena
	n, dead   int
	deadBytes int
	big       map[string]struct{} // past uint32 offsets
	seed      maphash.Seed
	hashMask  uint64 // tests force collisions
}

const (
	emptySlot = 0
	deadSlot  = 1
)

func newKeySet() *keySet {
	return &keySet{seed: maphash.MakeSeed(), hashMask: math.MaxUint64}
}

func (s *keySet) Len() int { return s.n + len(s.big) }

// find returns key's slot, or -1 and the first free slot of its probe.
func (s *keySet) find(key string) (at, free int) {
	free = -1
	if len(s.slots) == 0 {
		return -1, -1
	}
	mask := len(s.slots) - 1
	for i := int(maphash.String(s.seed, key)&s.hashMask) & mask; ; i = (i + 1) & mask {
		switch v := s.slots[i]; v {
		case emptySlot:
			if free < 0 {
				free = i
			}
			return -1, free
		case deadSlot:
			if free < 0 {
				free = i
			}
		default:
			if string(entry(s.arena, v-2)) == key {
				return i, free
			}
		}
	}
}

func entry(arena []byte, off uint32) []byte {
	l, w := binary.Uvarint(arena[off:])
	start := int(off) + w
	return arena[start : start+int(l)]
}

// appendKey returns the slot value of key, stored in the arena.
func appendKey[K string | []byte](s *keySet, key K) uint32 {
	off := uint32(len(s.arena))
	s.arena = binary.AppendUvarint(s.arena, uint64(len(key)))
	s.arena = append(s.arena, key...)
	return off + 2
}

func (s *keySet) Has(key string) bool {
	if _, ok := s.big[key]; ok {
		return true
	}
	at, _ := s.find(key)
	return at >= 0
}

// Add reports whether key was new.
func (s *keySet) Add(key string) bool {
	if _, ok := s.big[key]; ok {
		return false
	}
	// At most 3/4 of the slots used: an empty slot ends every probe.
	if 4*(s.n+s.dead+1) > 3*len(s.slots) {
		s.rebuild(max(16, 3*(s.n+1)/2))
	}
	at, free := s.find(key)
	if at >= 0 {
		return false
	}
	if len(s.arena)+binary.MaxVarintLen64+len(key) > math.MaxUint32-2 {
		if s.big == nil {
			s.big = map[string]struct{}{}
		}
		s.big[key] = struct{}{}
		return true
	}
	if s.slots[free] == deadSlot {
		s.dead--
	}
	s.slots[free] = appendKey(s, key)
	s.n++
	return true
}

// Remove reports whether key was a member.
func (s *keySet) Remove(key string) bool {
	if _, ok := s.big[key]; ok {
		delete(s.big, key)
		return true
	}
	at, _ := s.find(key)
	if at < 0 {
		return false
	}
	l, w := binary.Uvarint(s.arena[s.slots[at]-2:])
	s.deadBytes += w + int(l)
	s.slots[at] = deadSlot
	s.n--
	s.dead++
	if s.dead > s.n || 2*s.deadBytes > len(s.arena) {
		s.rebuild(max(16, 2*s.n))
	}
	return true
}

// rebuild makes an index for want members and drops what was removed.
func (s *keySet) rebuild(want int) {
	size := 16
	for 3*size < 4*want {
		size *= 2
	}
	old, oldArena := s.slots, s.arena
	compact := s.deadBytes > 0
	s.slots = make([]uint32, size)
	if compact {
		s.arena = make([]byte, 0, len(oldArena)-s.deadBytes+len(oldArena)/4)
	}
	s.n, s.dead, s.deadBytes = 0, 0, 0
	mask := size - 1
	for _, v := range old {
		if v < 2 {
			continue
		}
		key := entry(oldArena, v-2)
		i := int(maphash.Bytes(s.seed, key)&s.hashMask) & mask
		for s.slots[i] != emptySlot {
			i = (i + 1) & mask
		}
		s.slots[i] = v
		if compact {
			s.slots[i] = appendKey(s, key)
		}
		s.n++
	}
}

// All yields every member.
func (s *keySet) All() iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range s.slots {
			if v >= 2 && !yield(string(entry(s.arena, v-2))) {
				return
			}
		}
		for k := range s.big {
			if !yield(k) {
				return
			}
		}
	}
}
