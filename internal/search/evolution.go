package search

// Evolutionary search: Shen et al., 2024 (NeurIPS), "Search for Efficient Large Language
// Models", as its released code (shawnricecake/search-llm, evolution.py) runs it:
//
//   - Each generation fills the population with random unvisited candidates, keeps the Select
//     best candidates seen so far (fitness: calibration loss, lower is better), and breeds the
//     next generation from them: Mutation children (each gene re-drawn with probability
//     MutationProb) and Crossover children (each gene from one of two random parents).
//   - A candidate is evaluated once: one already visited is rejected and another drawn, at
//     most 10× the number wanted, as get_mutation/get_crossover do.
//   - Released defaults: population 50, select 10, mutation 25, crossover 25, m_prob 0.2,
//     20 generations. Ours are scaled to block masks (a dozen candidates, ~800 sets).
//
// The paper's constraint (a parameter budget) is kept exactly instead of by rejection: a
// candidate is a set of exactly n blocks, and both operators preserve the count. Mutation
// swaps each removed block, with probability MutationProb, for a kept candidate; crossover
// keeps the blocks both parents remove and fills the rest uniformly from the blocks only one
// of them removes — uniform crossover conditioned on the count.
//
// The paper's reformation step (rebuilding the kept weights of a layer from calibration
// activations, so the smaller layer mimics the original's output) applies to channel and
// head units inside a layer. Removing a whole block leaves no partial layer to reform, so it
// does not apply here; it belongs to width units.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
)

// EvoOptions tune evolution; zero fields take the defaults.
type EvoOptions struct {
	Population   int     // candidates per generation; 0 → 20
	Generations  int     // 0 → 10
	Select       int     // parents kept (the best seen); 0 → 10
	Mutation     int     // mutated children per generation; 0 → 10
	Crossover    int     // crossover children per generation; 0 → 10
	MutationProb float64 // per removed block; 0 → 0.2
}

// DefaultEvoOptions are the values zero fields take.
func DefaultEvoOptions() EvoOptions {
	return EvoOptions{Population: 20, Generations: 10, Select: 10, Mutation: 10, Crossover: 10, MutationProb: 0.2}
}

func (o EvoOptions) withDefaults() (EvoOptions, error) {
	d := DefaultEvoOptions()
	o.Population, o.Generations = cmp0(o.Population, d.Population), cmp0(o.Generations, d.Generations)
	o.Select, o.Mutation, o.Crossover = cmp0(o.Select, d.Select), cmp0(o.Mutation, d.Mutation), cmp0(o.Crossover, d.Crossover)
	if o.MutationProb == 0 {
		o.MutationProb = d.MutationProb
	}
	switch {
	case o.Population < 1 || o.Generations < 1 || o.Select < 1:
		return o, fmt.Errorf("--population %d, --generations %d, --select %d: want at least 1 each: %w", o.Population, o.Generations, o.Select, ErrSearch)
	case o.Mutation < 0 || o.Crossover < 0 || o.Mutation+o.Crossover > o.Population:
		return o, fmt.Errorf("--mutation %d + --crossover %d: want at most --population %d children: %w", o.Mutation, o.Crossover, o.Population, ErrSearch)
	case !(o.MutationProb > 0 && o.MutationProb <= 1):
		return o, fmt.Errorf("--mutation-prob %g: want a probability in (0, 1]: %w", o.MutationProb, ErrSearch)
	}
	return o, nil
}

type scored struct {
	set []int
	val float64
}

// evolver holds one evolutionary search.
type evolver struct {
	rn      *runner
	o       EvoOptions
	rng     *rand.Rand
	visited map[string]bool
	space   float64
	top     []scored
}

func evolution(rn *runner, o EvoOptions, rng *rand.Rand, p *Plan) error {
	p.Options["population"], p.Options["generations"], p.Options["select"] = o.Population, o.Generations, o.Select
	p.Options["mutation"], p.Options["crossover"], p.Options["mutation_prob"] = o.Mutation, o.Crossover, o.MutationProb
	e := &evolver{rn: rn, o: o, rng: rng, visited: map[string]bool{}, space: binomial(len(rn.cands), rn.n)}
	var pop []scored
	for gen := 0; gen < o.Generations; gen++ {
		more, ok, err := e.fill(o.Population - len(pop))
		if err != nil || !ok {
			return err
		}
		pop = append(pop, more...)
		e.keepTop(pop)
		rn.step(gen, o.Generations)
		mut, ok, err := e.children(o.Mutation, e.mutate)
		if err != nil || !ok {
			return err
		}
		cross, ok, err := e.children(o.Crossover, e.crossover)
		if err != nil || !ok {
			return err
		}
		pop = append(mut, cross...)
	}
	return nil
}

// try evaluates set unless it was visited; ok is false when the budget stops the search.
func (e *evolver) try(set []int, out *[]scored) (ok bool, err error) {
	key := setKey(set)
	if e.visited[key] {
		return true, nil
	}
	v, ok, err := e.rn.eval(set)
	if err != nil || !ok {
		return ok, err
	}
	e.visited[key] = true
	*out = append(*out, scored{set, v})
	return true, nil
}

// fill draws up to want random unvisited sets (fewer once the space is used up).
func (e *evolver) fill(want int) ([]scored, bool, error) {
	var out []scored
	for len(out) < want && float64(len(e.visited)) < e.space {
		perm := e.rng.Perm(len(e.rn.cands))
		set := make([]int, e.rn.n)
		for i := range set {
			set[i] = e.rn.cands[perm[i]]
		}
		if ok, err := e.try(normSet(set), &out); err != nil || !ok {
			return out, ok, err
		}
	}
	return out, true, nil
}

// children breeds up to want unvisited sets with op, giving up after 10× want draws.
func (e *evolver) children(want int, op func() []int) ([]scored, bool, error) {
	var out []scored
	for tries := 0; len(out) < want && tries < 10*want; tries++ {
		if ok, err := e.try(op(), &out); err != nil || !ok {
			return out, ok, err
		}
	}
	return out, true, nil
}

// keepTop keeps the Select best of the parents so far and pop (ties: lower set first).
func (e *evolver) keepTop(pop []scored) {
	all := append(slices.Clone(e.top), pop...)
	sort.SliceStable(all, func(a, b int) bool {
		if all[a].val != all[b].val {
			return all[a].val < all[b].val
		}
		return slices.Compare(all[a].set, all[b].set) < 0
	})
	e.top = all[:min(e.o.Select, len(all))]
}

// mutate swaps each removed block of a random parent, with probability MutationProb, for a
// candidate the child keeps: the count stays n.
func (e *evolver) mutate() []int {
	child := slices.Clone(e.top[e.rng.IntN(len(e.top))].set)
	for i := range child {
		if e.rng.Float64() >= e.o.MutationProb {
			continue
		}
		var free []int
		for _, c := range e.rn.cands {
			if !slices.Contains(child, c) {
				free = append(free, c)
			}
		}
		if len(free) > 0 {
			child[i] = free[e.rng.IntN(len(free))]
		}
	}
	return normSet(child)
}

// crossover keeps what two random parents both remove and fills the count from what only
// one of them removes.
func (e *evolver) crossover() []int {
	p1 := e.top[e.rng.IntN(len(e.top))].set
	p2 := e.top[e.rng.IntN(len(e.top))].set
	var child, either []int
	for _, b := range p1 {
		if slices.Contains(p2, b) {
			child = append(child, b)
		} else {
			either = append(either, b)
		}
	}
	for _, b := range p2 {
		if !slices.Contains(p1, b) {
			either = append(either, b)
		}
	}
	for _, i := range e.rng.Perm(len(either))[:e.rn.n-len(child)] {
		child = append(child, either[i])
	}
	return normSet(child)
}
