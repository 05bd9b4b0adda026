package eval

import (
	"errors"
	"fmt"
)

// Request is one (context, continuation) loglikelihood request, tokenised
// the way lm-eval's HFLM does it.
type Request struct {
	Context, Continuation string // as the task renders them
	// ContextMoved and ContinuationMoved are after lm-eval moves the
	// context's trailing whitespace onto the continuation.
	ContextMoved, ContinuationMoved string
	ContextIDs                      []int // encode(ContextMoved)
	// ContinuationIDs is encode(ContextMoved+ContinuationMoved) minus its
	// first len(ContextIDs) tokens, so it may differ from encoding the
	// continuation alone.
	ContinuationIDs []int
	// Input is (ContextIDs+ContinuationIDs)[-(maxLen+1):], the sequence for
	// LM.Score. Its last len(ContinuationIDs) targets are the continuation.
	Input     []int
	Truncated bool // Input lost tokens from the left
}

// InputLen is the number of tokens the model runs on (lm-eval's inplen).
func (r *Request) InputLen() int { return len(r.Input) - 1 }

// ErrContinuationTooLong is returned (wrapped) when a continuation alone
// does not fit the model's context window, which lm-eval cannot score either.
var ErrContinuationTooLong = errors.New("continuation longer than the model's max length")

// BuildRequests tokenises every choice of every doc of task: out[d][c] is
// choice c of task.Docs[d]. maxLen is the model's max length
// (max_position_embeddings).
func BuildRequests(task *Task, tok Tokenizer, maxLen int) ([][]Request, error) {
	out := make([][]Request, len(task.Docs))
	for d, doc := range task.Docs {
		reqs, err := docRequests(doc, tok, maxLen)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", task.Name, &LineError{Path: task.Path, Line: doc.Line, Err: err})
		}
		out[d] = reqs
	}
	return out, nil
}

func docRequests(doc Doc, tok Tokenizer, maxLen int) ([]Request, error) {
	// Choices usually share their context; encode each distinct one once.
	ctxCache := map[string][]int{}
	reqs := make([]Request, len(doc.Contexts))
	for i := range doc.Contexts {
		r, err := NewRequest(doc.Contexts[i], doc.Continuations[i], tok, maxLen, ctxCache)
		if err != nil {
			return nil, fmt.Errorf("choice %d: %w", i, err)
		}
		reqs[i] = r
	}
	return reqs, nil
}

// NewRequest tokenises one request as lm-eval v0.4's HFLM does:
//
//	n_spaces = len(context) - len(context.rstrip())
//	continuation = context[-n_spaces:] + continuation; context = context[:-n_spaces]
//	whole_enc = tok_encode(context + continuation); context_enc = tok_encode(context)
//	continuation_enc = whole_enc[len(context_enc):]
//
// without special tokens. An empty context gets BOS as its only token (HFLM's
// prefix_token_id); this implementation also does so for a context that is
// empty after moving its whitespace, where HFLM would misalign its logits.
// cache, if not nil, memoises context encodings.
func NewRequest(context, continuation string, tok Tokenizer, maxLen int, cache map[string][]int) (Request, error) {
	r := Request{Context: context, Continuation: continuation}
	if context == "" {
		r.ContextMoved, r.ContinuationMoved = context, continuation
	} else {
		r.ContextMoved = pyRStrip(context)
		r.ContinuationMoved = context[len(r.ContextMoved):] + continuation
	}
	if r.ContextMoved == "" {
		if tok.BOS() < 0 {
			return Request{}, errors.New("empty context and the tokenizer has no BOS token to stand in for it")
		}
		r.ContextIDs = []int{tok.BOS()}
		r.ContinuationIDs = tok.Encode(r.ContinuationMoved, false)
	} else {
		ctxIDs, ok := cache[r.ContextMoved]
		if !ok {
			ctxIDs = tok.Encode(r.ContextMoved, false)
			if cache != nil {
				cache[r.ContextMoved] = ctxIDs
			}
		}
		whole := tok.Encode(r.ContextMoved+r.ContinuationMoved, false)
		r.ContextIDs = ctxIDs
		r.ContinuationIDs = whole[min(len(ctxIDs), len(whole)):]
	}
	switch {
	case len(r.ContextIDs) == 0:
		// Nothing would precede the first continuation token to predict it.
		return Request{}, fmt.Errorf("context %q encodes to no tokens", clip(r.ContextMoved))
	case len(r.ContinuationIDs) == 0:
		return Request{}, fmt.Errorf("continuation %q encodes to no tokens", clip(r.ContinuationMoved))
	case len(r.ContinuationIDs) > maxLen:
		return Request{}, fmt.Errorf("%w: %d tokens > %d", ErrContinuationTooLong, len(r.ContinuationIDs), maxLen)
	}
	all := append(append(make([]int, 0, len(r.ContextIDs)+len(r.ContinuationIDs)), r.ContextIDs...), r.ContinuationIDs...)
	if len(all) > maxLen+1 {
		all, r.Truncated = all[len(all)-(maxLen+1):], true
	}
	r.Input = all
	return r, nil
}
