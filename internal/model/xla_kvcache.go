package model

// How decoding writes into the KV cache, per backend. XLA has DynamicUpdateSlice, which writes
// the step's keys/values in place (O(T) work); SimpleGo lacks it, so the cache is rewritten
// with a one-hot product (O(S) work per step — fine on CPU-sized models, wasteful on a GPU).
// Donating the cache buffers to the decode step lets XLA alias input and output, so the cache
// is never copied and the previous step's copy is not kept alive until Go's GC frees it.

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph code reads like maths
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// KVUpdateEnv overrides the KV-cache write strategy: "onehot", "dus" (DynamicUpdateSlice) or
// "auto" (the default: dus where the backend has it). For diagnostics and A/B checks on a
// device; the choice is made when a decode graph is built, so set it before the first run.
const KVUpdateEnv = "SHORTLLM_KV_UPDATE"

// KV-cache write strategies.
const (
	KVUpdateAuto   = "auto"
	KVUpdateOneHot = "onehot"
	KVUpdateDUS    = "dus"
)

// Engine holds the execution settings a runner uses, resolved once when a command starts
// (EngineFromEnv) and passed down, so that no graph builder reads the environment.
type Engine struct {
	KVUpdate string // KVUpdateOneHot or KVUpdateDUS
	DonateKV bool   // hand the cache buffers to each decode step
}

// DefaultEngine is the engine without overrides: the in-place cache write and donation where
// the backend has DynamicUpdateSlice.
func DefaultEngine(b backends.Backend) Engine {
	if supportsDUS(b) {
		return Engine{KVUpdate: KVUpdateDUS, DonateKV: true}
	}
	return Engine{KVUpdate: KVUpdateOneHot}
}

// EngineFromEnv resolves $SHORTLLM_KV_UPDATE and $SHORTLLM_DONATE_KV for backend b: the one
// place the environment is read.
func EngineFromEnv(b backends.Backend) (Engine, error) {
	mode, err := kvUpdateMode(b, os.Getenv(KVUpdateEnv))
	if err != nil {
		return Engine{}, err
	}
	e := Engine{KVUpdate: mode, DonateKV: mode == KVUpdateDUS}
	switch v := os.Getenv(DonateKVEnv); v {
	case "0":
		e.DonateKV = false
	case "1":
		e.DonateKV = true
	case "":
	default:
		return Engine{}, fmt.Errorf("$%s=%q: want 0 or 1", DonateKVEnv, v)
	}
	return e, nil
}

func kvUpdateMode(b backends.Backend, v string) (string, error) {
	mode := strings.ToLower(strings.TrimSpace(v))
	switch mode {
	case "", KVUpdateAuto:
		if supportsDUS(b) {
			return KVUpdateDUS, nil
		}
		return KVUpdateOneHot, nil
	case KVUpdateOneHot:
		return KVUpdateOneHot, nil
	case KVUpdateDUS:
		if !supportsDUS(b) {
			return "", fmt.Errorf("$%s=dus: backend %s has no DynamicUpdateSlice", KVUpdateEnv, b.Name())
		}
		return KVUpdateDUS, nil
	}
	return "", fmt.Errorf("$%s=%q: want auto, onehot or dus", KVUpdateEnv, mode)
}

func supportsDUS(b backends.Backend) bool {
	return b != nil && b.Capabilities().Operations[backends.OpTypeDynamicUpdateSlice]
}

// updateDUS writes k, v [B, T, Hkv, Dh] into layer i's cache at the first of positions pos
// [T]; decoding always passes consecutive positions, so one slice write is exact.
func (c *KVCache) updateDUS(i int, pos, k, v *Node) (*Node, *Node) {
	g := k.Graph()
	start := Reshape(Slice(pos, AxisRange(0, 1))) // scalar int32
	zero := ScalarZero(g, start.DType())
	idx := []*Node{zero, start, zero, zero}
	c.K[i] = DynamicUpdateSlice(c.K[i], k, idx)
	c.V[i] = DynamicUpdateSlice(c.V[i], v, idx)
	return c.K[i], c.V[i]
}

// DonateKVEnv set to 0 or 1 forces donating the cache buffers to each decode step off or on;
// by default they are donated where the in-place (dus) path is used.
const DonateKVEnv = "SHORTLLM_DONATE_KV"

// RunDonating is Run with the extra inputs marked in donate handed to the graph: their
// device buffers are consumed (the tensors must not be used afterwards), so XLA can write the
// outputs into them.
func (r *Runner) RunDonating(key string, fn GraphFn, donate []bool, extra ...*tensors.Tensor) (out []*tensors.Tensor, err error) {
	e, err := r.exec(key, fn)
	if err != nil {
		return nil, err
	}
	args := make([]any, 0, len(r.names)+len(extra))
	for _, n := range r.names {
		args = append(args, r.Model.Weights[n])
	}
	for i, t := range extra {
		if i < len(donate) && donate[i] && !t.IsShared() {
			d, err := DonateTensorBuffer(t, r.Backend, 0)
			if err != nil {
				return nil, fmt.Errorf("run %s: donate input %d: %w", key, i, err)
			}
			args = append(args, d)
			continue
		}
		args = append(args, t)
	}
	defer func() {
		if rec := recover(); rec != nil {
			out, err = nil, fmt.Errorf("run %s: %v", key, rec)
		}
	}()
	out, err = e.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", key, err)
	}
	return out, nil
}
