#!/usr/bin/env bash
# device-stages.sh — every stage of shortllm on a LLaMA-2-7B-shaped model in bf16 on one GPU,
# with the device memory nvidia-smi saw and the estimate of `shortllm plan` beside it:
#
#   score taylor (10×128, remat off), the ppl criterion (10×128), one LoRA step and one CPT
#   step (4×128, bf16 base; CPT with its float32 master and moments), prune (35% by the
#   Taylor scores), eval ppl (wikitext-2, 8 × 1024) and batch-1 greedy decoding (its rate
#   against the memory roofline: one read of the bf16 weights per token).
#
# Random weights (only shapes matter for memory and time): made on the GPU by transformers
# when python3 has torch (seconds), else by `shortllm init` (minutes on one core).
# Called by device-check.sh (part "stages") or alone:
#
#   scripts/device-stages.sh [--budget 420] [--config FILE] [--plugin PATH] [--skip STEP,...]
#   scripts/device-stages.sh --dry-run     # here: go backend, tiny model (< 2 minutes)
#   scripts/device-stages.sh --cpu --config ../shared/bench/llama-3.2-1b-shape.json --dtype f32 \
#       --windows 2 --train-batch 1        # the same table on this CPU (go backend), peak RSS
#
# Results under $OUT: stages.json (one row per step: wall s, exit, GPU MiB peak, estimate),
# stages.txt (the table) and stages.log.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
dry=0 cpu=0 dtype=bf16 windows=10 tbatch=4 bin="" shared="${SHORTLLM_SHARED:-}" work="" plugin="" budget=500 skip="" config=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --cpu) cpu=1 ;;
    --dtype) dtype="$2"; shift ;;
    --windows) windows="$2"; shift ;;
    --train-batch) tbatch="$2"; shift ;;
    --bin) bin="$2"; shift ;;
    --shared) shared="$2"; shift ;;
    --work) work="$2"; shift ;;
    --plugin) plugin="$2"; shift ;;
    --budget) budget="$2"; shift ;;
    --config) config="$2"; shift ;;
    --skip) skip=",$2,"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "device-stages: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
start_s=$SECONDS
out="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/device-stages-out.XXXXXX")}"
mkdir -p "$out"
log="$out/stages.log"
: >"$log"
say() { echo "device-stages: $*" | tee -a "$log" >&2; }
bin="${bin:-$root/bin/shortllm}"
[ -x "$bin" ] || { say "--bin $bin: not an executable (make build)"; exit 2; }
if [ -z "$shared" ]; then
  for d in "$root/../shared" "$root/shared"; do [ -d "$d/goldens" ] && shared="$d" && break; done
fi
[ -d "$shared/data" ] || { say "--shared: no shared/ found; give --shared DIR"; exit 2; }
S="$shared"
work="${work:-${TMPDIR:-/tmp}/shortllm-device-stages}"
st="$work/steps"
rm -rf "$st" && mkdir -p "$st"

if [ $dry = 1 ] || [ $cpu = 1 ]; then
  backend=go planbe=go
  [ $dry = 1 ] && config="${config:-$here/tiny-dry-run.json}"
  [ -n "$config" ] || { say "--cpu needs --config FILE"; exit 2; }
else
  if [ -z "$plugin" ]; then
    plugin="$(python3 -c 'import jax_plugins.xla_cuda13 as p; print(p.__path__[0])' 2>/dev/null)/xla_cuda_plugin.so"
  fi
  [ -f "$plugin" ] || { say "no xla_cuda_plugin.so (pip jax-cuda13-pjrt); give --plugin PATH"; exit 2; }
  # noprealloc: the CUDA client grows its pool, so nvidia-smi shows what a stage needed.
  backend="xla:$plugin,noprealloc" config="${config:-$S/bench/llama-2-7b-shape.json}" planbe=xla
fi
export GOMLX_BACKEND="$backend"
say "backend $GOMLX_BACKEND; config $config; work $work"

# run NAME LIMIT CMD...: one step, stdout to $st/NAME.json, stderr to the log, GPU memory
# sampled every 0.1 s (peak in $st/NAME.gpumem), wall time in $st/NAME.wall.
run() {
  local name="$1" limit="$2"; shift 2
  if [[ "$skip" == *",$name,"* ]]; then say "$name: skipped (--skip)"; echo skipped >"$st/$name.rc"; return 1; fi
  local left=$((budget - (SECONDS - start_s)))
  if [ "$left" -le 10 ]; then say "$name: skipped (budget spent)"; echo budget >"$st/$name.rc"; return 1; fi
  [ "$limit" -gt "$left" ] && limit=$left
  [ $cpu = 1 ] && limit=$left # CPU runs of big shapes: the budget is the only cap
  local sampler=""
  if [ $dry = 0 ] && command -v nvidia-smi >/dev/null; then
    (while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; sleep 0.1; done) >"$st/$name.gpumem.s" 2>/dev/null &
    sampler=$!
  fi
  local t0=$SECONDS rc
  say "$name: $* (limit ${limit}s)"
  if [ -x /usr/bin/time ]; then
    # Peak RSS of the process (the go backend's memory; on a GPU, the host side).
    timeout "$limit" /usr/bin/time -f %M -o "$st/$name.rsskb" "$@" >"$st/$name.json" 2>>"$log"
  else
    timeout "$limit" "$@" >"$st/$name.json" 2>>"$log"
  fi
  rc=$?
  if [ -n "$sampler" ]; then
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    sort -n "$st/$name.gpumem.s" | tail -1 >"$st/$name.gpumem"
  fi
  echo "$rc" >"$st/$name.rc"
  echo $((SECONDS - t0)) >"$st/$name.wall"
  say "$name: exit $rc after $((SECONDS - t0))s, GPU peak $(cat "$st/$name.gpumem" 2>/dev/null || echo -) MiB"
  return $rc
}

model="$work/model" pruned="$work/pruned"
calib="$S/data/stories/calib10x128.ids.json" batch="$S/data/stories/lora_batch4x128.json"
if [ "$windows" != 10 ] || [ "$tbatch" != 4 ]; then
  # Fewer calibration windows or training rows (a CPU run of a big shape): cut the files.
  python3 - "$calib" "$batch" "$windows" "$tbatch" "$work" <<'PY'
import json, sys
calib, batch, n, b, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
c = json.load(open(calib)); c["ids"] = c["ids"][:n]; json.dump(c, open(work + "/calib.json", "w"))
d = json.load(open(batch))
if isinstance(d, dict):
    d = {k: (v[:b] if isinstance(v, list) else v) for k, v in d.items()}
else:
    d = d[:b]
json.dump(d, open(work + "/batch.json", "w"))
PY
  calib="$work/calib.json" batch="$work/batch.json"
fi
if [ $dry = 0 ] && [ $cpu = 0 ] && python3 -c 'import torch, transformers' 2>/dev/null; then
  run init 240 python3 - "$config" "$model" "$S/tokenizers/llama2" <<'PY'
import json, shutil, sys, glob, os, torch
from transformers import LlamaConfig, LlamaForCausalLM
cfg = LlamaConfig(**json.load(open(sys.argv[1])))
torch.manual_seed(1)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    m = LlamaForCausalLM(cfg)
m.save_pretrained(sys.argv[2], max_shard_size="5GB")
for f in glob.glob(sys.argv[3] + "/*"):
    if os.path.isfile(f):
        shutil.copy(f, sys.argv[2])
print(json.dumps({"params": sum(p.numel() for p in m.parameters())}))
PY
else
  run init 600 "$bin" --quiet init --json --config "$config" --out "$model" --tokenizer "$S/tokenizers/llama2" --save-dtype "$dtype" --seed 1 --force
fi

wiki="$S/data/wikitext2/wiki.test.raw"
seq=1024 chunks=8 newtok=128
[ $dry = 1 ] && seq=64 chunks=4
[ $cpu = 1 ] && seq=128 chunks=4 newtok=16
# Estimates first (host only): what `shortllm plan` predicts for each measured stage.
for s in taylor:$windows:128 ppl:$windows:128 lora:$tbatch:128 cpt:$tbatch:128 eval:4:$seq; do
  IFS=: read -r stage b t <<<"$s"
  "$bin" --quiet --json --backend "$planbe" plan --config "$config" --stage "$stage" --dtype "$dtype" --batch-size "$b" --seq-len "$t" \
    >"$st/plan_$stage.json" 2>>"$log" || say "plan $stage failed"
done

run taylor 240 "$bin" --quiet --json score --model "$model" --calib "$calib" --criterion taylor --batch-size "$windows" --dtype "$dtype" --remat off --out "$work/taylor.json"
run lora_step 180 "$bin" --quiet --json retrain --model "$model" --out "$work/lora" --mode lora --data "$batch" --max-steps 1 \
  --batch-size "$tbatch" --micro-batch-size "$tbatch" --seq-len 128 --warmup-steps 0 --dtype "$dtype" --remat off --force
run cpt_step 240 "$bin" --quiet --json retrain --model "$model" --out "$work/cpt" --mode cpt --data "$batch" --max-steps 1 \
  --batch-size "$tbatch" --micro-batch-size "$tbatch" --seq-len 128 --warmup-steps 0 --dtype "$dtype" --remat off --force
rm -rf "$work/cpt" # 13 GB of disk
scores="$work/taylor.json"
[ -s "$scores" ] || scores=""
if [ $dry = 1 ]; then
  run prune 180 "$bin" --quiet --json prune --model "$model" --out "$pruned" --scores "$scores" --num-blocks 1 --no-plus --force
elif [ -n "$scores" ]; then
  run prune 180 "$bin" --quiet --json prune --model "$model" --out "$pruned" --scores "$scores" --ratio 35% --force
else
  run prune 180 "$bin" --quiet --json prune --model "$model" --out "$pruned" --num-blocks 11 --force
fi
run eval_ppl 180 "$bin" --quiet --json eval ppl --model "$model" --wikitext2 "$wiki" --bos once --seq-len "$seq" --batch-size 4 \
  --max-chunks "$chunks" --dtype "$dtype"
run decode 180 "$bin" --quiet --json eval speed --model "$model" --batch-sizes 1 --new-tokens "$newtok" --prompt-len 32 --runs 2 --warmup 1 --dtype "$dtype"

# Last: 32 skip-block graphs to compile, the one step that may not finish in a short lease.
run ppl_criterion 200 "$bin" --quiet --json score --model "$model" --calib "$calib" --criterion ppl --batch-size "$windows" --dtype "$dtype"

device="$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"
[ $cpu = 1 ] && device="this CPU, go backend ($(nproc) cores)"
python3 - "$st" "$out" "${device:-dry run (go backend)}" "$config" "$dtype" <<'PY'
import json, os, sys
st, out, device, config, dtype = sys.argv[1:6]
def read(name, ext, conv=str):
    try:
        return conv(open(os.path.join(st, name + ext)).read().strip())
    except Exception:
        return None
def doc(name):
    try:
        return json.load(open(os.path.join(st, name + ".json")))
    except Exception:
        return None
def plan(s):
    d = doc("plan_" + s)
    try:
        return round(d["estimates"][0]["peak_bytes"] / 2**30, 1)
    except Exception:
        return None
rows = []
for name, est in [("init", None), ("taylor", "taylor"), ("ppl_criterion", "ppl"), ("lora_step", "lora"),
                  ("cpt_step", "cpt"), ("prune", None), ("eval_ppl", "eval"), ("decode", None)]:
    r = {"step": name, "exit": read(name, ".rc"), "wall_s": read(name, ".wall", int),
         "gpu_peak_mib": read(name, ".gpumem", int), "peak_rss_mib": (lambda k: k // 1024 if k else None)(read(name, ".rsskb", int)),
         "plan_estimate_gib": plan(est) if est else None}
    rows.append(r)
dec = doc("decode")
note = ""
try:
    pt = [p for p in dec["models"][0]["points"] if p["batch_size"] == 1][0]
    r = pt["throughput"]
    params = dec["models"][0]["params"]
    # Memory roofline: every decoded token reads the bf16 weights once (the KV cache of a
    # 160-token sequence is small beside them).
    bw = {"H200": 4.8e12, "H100": 3.35e12}
    peak = next((v for k, v in bw.items() if k in device), None)
    w = 2 if dtype == "bf16" else 4
    note = "decode batch 1: %.1f tokens/s; %d params = %.2f GB of %s weights per token" % (r, params, w * params / 1e9, dtype)
    if peak:
        ideal = peak / (w * params)
        note += "; roofline %.0f tokens/s at %.2f TB/s: %.0f%% of it" % (ideal, peak / 1e12, 100 * r / ideal)
except Exception as e:
    note = "decode: no result (%s)" % e
res = {"device": device, "rows": rows, "decode": note}
json.dump(res, open(os.path.join(out, "stages.json"), "w"), indent=1)
lines = ["# shortllm stages, %s, %s — %s" % (os.path.basename(config), dtype, device),
         "| step | exit | wall s | GPU peak MiB | peak RSS MiB | plan estimate GiB |", "|---|---|---|---|---|---|"]
for r in rows:
    lines.append("| %s | %s | %s | %s | %s | %s |" % (r["step"], r["exit"], r["wall_s"], r["gpu_peak_mib"], r["peak_rss_mib"], r["plan_estimate_gib"]))
lines.append(note)
open(os.path.join(out, "stages.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
tar -czf "$out/stage-steps.tar.gz" -C "$st" . 2>/dev/null
exit 0
