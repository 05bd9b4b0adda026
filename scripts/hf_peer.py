#!/usr/bin/env python3
"""The Hugging Face transformers peer for scripts/device-check.sh.

Loads the same safetensors directories shortllm measures, in bf16, and measures the same
things the same way:
  - perplexity-eval throughput: forward passes over [batch, seq_len] token ids with the
    float32 log-softmax NLL of every position (what `shortllm eval ppl` computes); the first
    batch is timed apart (warm-up; shortllm's first batch also compiles), the rest give
    steady tokens/s;
  - generation throughput (`shortllm eval speed`): one random prompt of prompt_len ids
    repeated over the batch, exactly new_tokens greedy tokens (EOS ignored), median seconds
    over runs after warm-up runs, tokens/s = batch × new_tokens / median.
Token contents do not change the cost, so random ids with a fixed seed stand in for text.
Prints one JSON document on stdout.
"""
import argparse
import json
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def sync(dev):
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def ppl_speed(model, dev, vocab, seq_len, batch, batches, gen):
    times = []
    with torch.no_grad():
        for _ in range(batches):
            ids = torch.randint(0, vocab, (batch, seq_len + 1), generator=gen).to(dev)
            sync(dev)
            t0 = time.perf_counter()
            logits = model(ids[:, :-1]).logits
            lp = torch.log_softmax(logits.float(), dim=-1)
            nll = -lp.gather(-1, ids[:, 1:].unsqueeze(-1)).sum()
            nll.item()
            sync(dev)
            times.append(time.perf_counter() - t0)
            del logits, lp
    tokens = batch * seq_len
    res = {"batch_size": batch, "seq_len": seq_len, "batches": batches,
           "first_batch_s": times[0], "wall_s": sum(times),
           "tokens_per_s": tokens * batches / sum(times)}
    if batches > 1:
        res["steady_tokens_per_s"] = tokens * (batches - 1) / sum(times[1:])
    return res


def gen_speed(model, dev, vocab, bos, sizes, prompt_len, new_tokens, runs, warmup, gen):
    prompt = torch.randint(0, vocab, (prompt_len,), generator=gen)
    if bos is not None:
        prompt[0] = bos
    points = []
    for b in sizes:
        ids = prompt.unsqueeze(0).repeat(b, 1).to(dev)
        mask = torch.ones_like(ids)
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(warmup + runs):
            sync(dev)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens,
                                     min_new_tokens=new_tokens, do_sample=False,
                                     pad_token_id=0, eos_token_id=None)
            sync(dev)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            assert out.shape[1] == prompt_len + new_tokens, out.shape
        lat = statistics.median(times)
        pt = {"batch_size": b, "latency_s": lat, "throughput": b * new_tokens / lat}
        if dev.startswith("cuda"):
            pt["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
            pt["mem_kind"] = "torch_max_allocated"
        points.append(pt)
    return points


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--pruned", default="")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--batch-sizes", default="1,16,64")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    sizes = [int(s) for s in a.batch_sizes.split(",")]
    doc = {"peer": "transformers", "transformers": __import__("transformers").__version__,
           "torch": torch.__version__, "device": a.device, "dtype": "bf16", "models": []}
    if a.device.startswith("cuda"):
        doc["device_name"] = torch.cuda.get_device_name(0)
    for path in [a.model] + ([a.pruned] if a.pruned else []):
        t0 = time.perf_counter()
        try:  # transformers >= 4.56 names it dtype; older ones only know torch_dtype
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
        except TypeError:
            model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
        model = model.to(a.device).eval()
        load_s = time.perf_counter() - t0
        cfg = model.config
        bos = cfg.bos_token_id if isinstance(cfg.bos_token_id, int) else None
        gen = torch.Generator().manual_seed(1)
        m = {"model": path, "num_layers": cfg.num_hidden_layers,
             "params": sum(p.numel() for p in model.parameters()), "load_s": load_s,
             "ppl": ppl_speed(model, a.device, cfg.vocab_size, a.seq_len, a.batch_size, a.batches, gen),
             "points": gen_speed(model, a.device, cfg.vocab_size, bos, sizes, a.prompt_len,
                                 a.new_tokens, a.runs, a.warmup, gen)}
        doc["models"].append(m)
        del model
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    json.dump(doc, sys.stdout)
    print()


if __name__ == "__main__":
    main()
