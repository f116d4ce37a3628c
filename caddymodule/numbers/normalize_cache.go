package numbers

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// recentSlots bounds the answers a Checker remembers: about 100 KB.
const recentSlots = 1024

// recentAnswers remembers the last answer of Normalize for each of
// recentSlots slots, picked by a seeded hash of the input: parsing and
// type-matching a number takes tens of microseconds and a few dozen
// allocations, and the same number comes back often, above all in an
// SMS-pumping flood of updates to the numbers under attack, which must be
// refused cheaply. A slot holds one input, replaced by the next input that
// hashes to it: the memory never grows, and the answer is the same as
// parsing again (a Checker's policy never changes).
type recentAnswers struct {
	seed  maphash.Seed
	slots [recentSlots]atomic.Pointer[answer]
}

type answer struct {
	input, number string
	err           error
}

func (r *recentAnswers) slot(input string) *atomic.Pointer[answer] {
	return &r.slots[maphash.String(r.seed, input)%recentSlots]
}

func (r *recentAnswers) get(input string) *answer {
	if a := r.slot(input).Load(); a != nil && a.input == input {
		return a
	}
	return nil
}

// put keeps its own copy of input: the caller's may share a request body.
func (r *recentAnswers) put(input, number string, err error) {
	r.slot(input).Store(&answer{input: strings.Clone(input), number: number, err: err})
}
