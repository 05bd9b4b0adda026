#!/usr/bin/env python3
"""Summarises scripts/device-check.sh's JSON files into $OUT/device-check.json and a short table."""
import argparse
import json
import os


def load(out, name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            text = f.read().strip()
        return json.loads(text.splitlines()[-1]) if text else {"error": "no output (see device-check.log)"}
    except (OSError, ValueError) as e:
        return {"error": str(e)}


def gpumem(out, name):
    try:
        with open(os.path.join(out, name + ".gpumem")) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


def fmt(v, spec=".0f"):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--removed", type=int, required=True)
    ap.add_argument("--blocks", default="")
    ap.add_argument("--dry-run", type=int, default=0)
    ap.add_argument("--wall", type=float, default=0)
    a = ap.parse_args()
    out = a.out
    summary = {"device": a.device, "dry_run": bool(a.dry_run), "wall_s": a.wall,
               "layers": a.layers, "removed_blocks": a.removed, "blocks": a.blocks,
               "ideal_speedup": a.layers / (a.layers - a.removed), "conformance": {}, "speed": {}}
    rows = []
    ok = True
    names = ["golden_stories260K", "golden_stories260K_tf32", "golden_stories260K_notriton",
             "golden_deep16", "golden_stories260K_onehot", "golden_deep16_bf16"]
    for name in names:
        if name.endswith(("_tf32", "_notriton")) and not os.path.exists(os.path.join(out, name + ".json")):
            continue  # only run where it tells something
        g = load(out, name)
        summary["conformance"][name] = g
        passed = g.get("pass") is True
        if not name.endswith("_tf32"):  # TF32 is shown for contrast; it is expected to miss
            ok = ok and passed
        text = g.get("text_match")
        rows.append((name, "PASS" if passed else "FAIL " + str(g.get("failure") or g.get("error") or g.get("skipped")),
                     g.get("backend", "-"), g.get("dtype", "-"), g.get("kv_update", "-"),
                     fmt(g.get("logits_max_rel_err"), ".1e"), fmt(g.get("mean_nll_rel_err"), ".1e"),
                     "%s/%s" % (g.get("greedy_matched", "-"), g.get("greedy_steps", "-")),
                     "-" if text is None else str(text)))

    pf, pp, sp, hf = load(out, "ppl_full"), load(out, "ppl_pruned"), load(out, "speed"), load(out, "hf_peer")
    hf_models = hf.get("models") or []
    hf_note = hf.get("skipped") or hf.get("error")

    def steady(d):
        t = (d.get("timings") or [{}])[0]
        return t.get("steady_tokens_per_s") or t.get("tokens_per_s")

    def hf_ppl(i):
        if i < len(hf_models):
            p = hf_models[i]["ppl"]
            return p.get("steady_tokens_per_s") or p.get("tokens_per_s")
        return None

    speed_rows = [("ppl tokens/s (steady)", steady(pf), steady(pp), hf_ppl(0), hf_ppl(1), None)]
    sm = sp.get("models") or []
    for i, pt in enumerate((sm[0]["points"] if sm else [])):
        b = pt["batch_size"]
        pruned = sm[1]["points"][i]["throughput"] if len(sm) > 1 else None
        width = sm[2]["points"][i]["throughput"] if len(sm) > 2 else None  # 35% in width (prune_width)
        h = [m["points"][i]["throughput"] if i < len(m.get("points", [])) else None for m in hf_models] + [None, None]
        speed_rows.append(("gen tokens/s b=%d" % b, pt["throughput"], pruned, h[0], h[1], width))
    for label, full, pruned, hfull, hpruned, width in speed_rows:
        summary["speed"][label] = {"shortllm_full": full, "shortllm_pruned": pruned,
                                   "pruned_speedup": (pruned / full) if full and pruned else None,
                                   "shortllm_width": width, "width_speedup": (width / full) if full and width else None,
                                   "hf_full": hfull, "hf_pruned": hpruned,
                                   "shortllm_over_hf": (full / hfull) if full and hfull else None}
    summary["gpu_mem_peak_mib"] = {n: gpumem(out, n) for n in ["ppl_full", "ppl_pruned", "speed", "hf_peer"]}
    summary["hf_peer"] = hf_note or "ran"
    summary["conformance_pass"] = ok
    with open(os.path.join(out, "device-check.json"), "w") as f:
        json.dump(summary, f, indent=2)

    print()
    print("== device check: %s%s, %.0fs" % (a.device or "?", " (DRY RUN)" if a.dry_run else "", a.wall))
    hdr = ("check", "result", "backend", "dtype", "kv", "logits err", "nll err", "greedy", "text")
    w = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    for r in [hdr] + rows:
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
    print()
    print("speed, bf16: full %d layers vs pruned %d (removed %s; ideal %.2fx)%s" % (
        a.layers, a.layers - a.removed, a.blocks, summary["ideal_speedup"],
        "; HF peer: " + hf_note if hf_note else ""))
    hdr2 = ("metric", "shortllm", "pruned", "speedup", "HF", "HF pruned", "shortllm/HF", "width 35%", "w speedup")
    rows2 = []
    for label, v in summary["speed"].items():
        rows2.append((label, fmt(v["shortllm_full"], ".1f"), fmt(v["shortllm_pruned"], ".1f"),
                      fmt(v["pruned_speedup"], ".2f") + "x", fmt(v["hf_full"], ".1f"),
                      fmt(v["hf_pruned"], ".1f"), fmt(v["shortllm_over_hf"], ".2f"),
                      fmt(v["shortllm_width"], ".1f"), fmt(v["width_speedup"], ".2f") + "x"))
    mem = summary["gpu_mem_peak_mib"]
    rows2.append(("GPU MiB peak, ppl (nvidia-smi)", fmt(mem["ppl_full"]), fmt(mem["ppl_pruned"]), "", fmt(mem["hf_peer"]), "", "", "", ""))
    rows2.append(("GPU MiB peak, gen (all models)", fmt(mem["speed"]), "", "", "(whole run)", "", "", "", ""))
    w2 = [max(len(str(r[i])) for r in rows2 + [hdr2]) for i in range(len(hdr2))]
    for r in [hdr2] + rows2:
        print("  ".join(str(c).ljust(w2[i]) for i, c in enumerate(r)))
    print("conformance: %s; JSON: %s" % ("PASS" if ok else "FAIL", os.path.join(out, "device-check.json")))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
