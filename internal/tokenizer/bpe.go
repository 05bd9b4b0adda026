package tokenizer

// symbol is one node of the doubly linked list a word is merged in. start/end are byte
// offsets into the word; they identify a symbol's state, so a queued pair is stale when
// either side has grown since it was queued.
type symbol struct {
	start, end int32
	id         int32
	prev, next int32
}

// candidate is a queued merge of the symbol at left with its right neighbour.
type candidate struct {
	prio     float64 // lower merges first
	left     int32
	leftEnd  int32
	rightEnd int32
	mergedID int32
}

func (a candidate) before(b candidate) bool {
	if a.prio != b.prio {
		return a.prio < b.prio
	}
	return a.left < b.left // ties go to the leftmost pair, as in SentencePiece and HF
}

// pairFunc reports whether two adjacent symbols merge, into which id and at what priority.
type pairFunc func(l, r *symbol) (id int32, prio float64, ok bool)

// candHeap is a binary min-heap; hand-written to avoid container/heap's interface calls
// in the hot loop.
type candHeap []candidate

func (h *candHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() candidate {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].before(s[l]) {
			m = r
		}
		if !s[m].before(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// mergeSymbols applies merges in priority order until none is left. Each merge costs
// O(log n), so long unsplit inputs (a whole SentencePiece text) stay O(n log n).
func mergeSymbols(syms []symbol, pair pairFunc) []symbol {
	h := make(candHeap, 0, len(syms))
	queue := func(l int32) {
		if l < 0 {
			return
		}
		r := syms[l].next
		if r < 0 {
			return
		}
		if id, prio, ok := pair(&syms[l], &syms[r]); ok {
			h.push(candidate{prio: prio, left: l, leftEnd: syms[l].end, rightEnd: syms[r].end, mergedID: id})
		}
	}
	for i := range syms {
		queue(int32(i))
	}
	for len(h) > 0 {
		c := h.pop()
		l := &syms[c.left]
		if l.id < -1 || l.end != c.leftEnd || l.next < 0 {
			continue
		}
		r := &syms[l.next]
		if r.end != c.rightEnd {
			continue
		}
		l.end, l.id, l.next = r.end, c.mergedID, r.next
		if r.next >= 0 {
			syms[r.next].prev = c.left
		}
		r.id = -2 // dead
		queue(l.prev)
		queue(c.left)
	}
	return syms
}

// linkSymbols sets prev/next so the slice forms a list in order.
func linkSymbols(syms []symbol) {
	for i := range syms {
		syms[i].prev = int32(i - 1)
		syms[i].next = int32(i + 1)
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
}
