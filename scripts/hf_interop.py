#!/usr/bin/env python3
"""Interoperability check with the real Python clients (run on the lent machine, which has
torch, transformers and peft): transformers' AutoModelForCausalLM loads shortllm's depth- and
width-pruned checkpoints, PeftModel loads a shortllm LoRA adapter on the depth-pruned base, and
each is run in float64 to write a golden in ../shared/goldens' forward format. `shortllm
check-golden` then compares shortllm's logits, NLL and greedy path with it (1e-4).

usage: hf_interop.py DIR  (DIR holds probe.json, depth/, width/, lora/; goldens go to $OUT)
"""
import json
import os
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def golden(model, ids, about, path, steps=64):
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
        lp = torch.log_softmax(logits, -1)
        nll = [-lp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]
        seq, margins = [ids[0]], []
        for _ in range(steps):
            last = model(torch.tensor([seq])).logits[0, -1].double()
            top = torch.topk(last, 2)
            margins.append((top.values[0] - top.values[1]).item())
            seq.append(int(top.indices[0]))
    safe = next((i for i, m in enumerate(margins) if m < 1e-3), len(margins))
    pos = [0, 1, 2, len(ids) - 1]
    doc = {"model": about, "probe_ids": ids, "logits_positions": pos, "logits": [logits[p].tolist() for p in pos],
           "nll": nll, "mean_nll": sum(nll) / len(nll), "greedy_ids": seq, "greedy_safe_steps": safe}
    with open(path, "w") as f:
        json.dump(doc, f)
    print(f"{about}: mean nll {doc['mean_nll']:.8f}, greedy safe steps {safe}", flush=True)


def main():
    d, out = sys.argv[1], os.environ["OUT"]
    ids = json.load(open(os.path.join(d, "probe.json")))["probe_ids"]
    for name in ["depth", "width"]:
        m = AutoModelForCausalLM.from_pretrained(os.path.join(d, name), torch_dtype=torch.float64, attn_implementation="eager")
        print(name, type(m).__name__, m.config.num_hidden_layers, m.config.num_attention_heads, m.config.intermediate_size)
        golden(m, ids, "transformers " + name, os.path.join(out, name + ".golden.json"))
    base = AutoModelForCausalLM.from_pretrained(os.path.join(d, "depth"), torch_dtype=torch.float64, attn_implementation="eager")
    peft = PeftModel.from_pretrained(base, os.path.join(d, "lora"))
    peft = peft.to(torch.float64)
    golden(peft, ids, "peft lora on depth", os.path.join(out, "lora.golden.json"))


if __name__ == "__main__":
    main()
