#!/usr/bin/env bash
# device-check.sh — one prepared GPU run (≤ 8 minutes) for a machine without a Go toolchain:
#
#   1. conformance: the forward goldens of stories260K and deep16 and the 200-token greedy
#      text, on the GPU (shortllm check-golden; `go test` cannot run there), in f32 with the
#      in-place (DynamicUpdateSlice) KV cache, again with the one-hot cache, and deep16 in bf16;
#   2. speed against Hugging Face transformers on the same GPU in the same run: a random-weight
#      LLaMA of Llama-3.2-1B shapes in bf16 — perplexity-eval tokens/s at batch 8 × 1024 and
#      generation throughput at batch 1, 16, 64 (128 new tokens) — and the same model with 35%
#      of its blocks removed, against the ideal speedup L/(L−n), and with 35% of its parameters
#      removed in width (heads and FFN channels, wanda-sp): depth vs width at equal size.
#
# Results under $OUT (four files, as the device tool returns at most eight): device-check.json
# (the summary), device-check.txt (the table, also printed last), device-check.log and
# steps.tar.gz (every step's JSON output, exit status and GPU memory peak).
#
#   scripts/device-check.sh                 # on the GPU machine (finds the CUDA PJRT plugin)
#   scripts/device-check.sh --dry-run       # here: go backend, tiny model, tiny sizes (< 60 s)
#
# Options: --bin PATH (default bin/shortllm), --shared DIR (default: ../shared, ./shared or
# $SHORTLLM_SHARED), --work DIR (big scratch files; default $TMPDIR/shortllm-device-check),
# --plugin PATH (xla_cuda_plugin.so), --skip-peer, --skip STEP,STEP (by the names the log
# shows, e.g. golden_deep16,ppl_pruned: to re-run part of the check on a short lease),
# --budget SECONDS (default 420: later steps are skipped, and said so, once the run is past it),
# --parts conformance,speed,stages (default conformance,speed: one device call is at most 600 s;
# "stages" is scripts/device-stages.sh, every stage on a 7B-shaped bf16 model, ~500 s alone).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
dry=0 skip_peer=0 bin="" shared="${SHORTLLM_SHARED:-}" work="" plugin="" budget=420 skip="" parts=",conformance,speed,"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --skip-peer) skip_peer=1 ;;
    --bin) bin="$2"; shift ;;
    --shared) shared="$2"; shift ;;
    --work) work="$2"; shift ;;
    --plugin) plugin="$2"; shift ;;
    --budget) budget="$2"; shift ;;
    --skip) skip=",$2,"; shift ;;
    --parts) parts=",$2,"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "device-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

start_s=$SECONDS
xla_failed=0
out="${OUT:-}"
if [ -z "$out" ]; then out="$(mktemp -d "${TMPDIR:-/tmp}/device-check-out.XXXXXX")"; fi
mkdir -p "$out"
log="$out/device-check.log"
: >"$log"
say() { echo "device-check: $*" | tee -a "$log" >&2; }

bin="${bin:-$root/bin/shortllm}"
if [ ! -x "$bin" ]; then
  say "--bin $bin: not an executable (build it with make build before carrying the tree)"
  exit 2
fi
if [ -z "$shared" ]; then
  for d in "$root/../shared" "$root/shared"; do
    if [ -d "$d/goldens" ]; then shared="$d"; break; fi
  done
fi
if [ -z "$shared" ] || [ ! -d "$shared/goldens" ]; then
  say "--shared: no shared/ (models, goldens, data) beside or inside $root; give --shared DIR"
  exit 2
fi
work="${work:-${TMPDIR:-/tmp}/shortllm-device-check}"
mkdir -p "$work"
st="$work/steps"
rm -rf "$st" && mkdir -p "$st"

# --- backend -----------------------------------------------------------------------------
if [ $dry = 1 ]; then
  backend="go"
  device="dry run: go backend (CPU)"
else
  if [ -z "$plugin" ]; then
    plugin="$(python3 -c 'import jax_plugins.xla_cuda13 as p; print(p.__path__[0])' 2>/dev/null)/xla_cuda_plugin.so"
    if [ ! -f "$plugin" ]; then
      # Any site-packages: jax-cuda12-pjrt or jax-cuda13-pjrt.
      plugin="$(python3 - <<'PY' 2>/dev/null
import glob, site, sys
dirs = site.getsitepackages() + [site.getusersitepackages()] + sys.path
for d in dirs:
    for f in sorted(glob.glob(d + "/jax_plugins/xla_cuda*/xla_cuda_plugin.so"), reverse=True):
        print(f); sys.exit()
PY
)"
    fi
  fi
  if [ -z "$plugin" ] || [ ! -f "$plugin" ]; then
    say "no xla_cuda_plugin.so found (pip jax-cuda13-pjrt); give --plugin PATH"
    exit 2
  fi
  backend="xla:$plugin"
  device="$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"
fi
export GOMLX_BACKEND="$backend"
say "backend $GOMLX_BACKEND; shared $shared; work $work; out $out"

# run NAME TIMEOUT CMD... : runs one step with a timeout, stdout to $st/NAME.json, stderr to
# the log; samples GPU memory meanwhile (peak MiB in $st/NAME.gpumem). Steps past the budget
# are skipped.
run() {
  local name="$1" limit="$2"; shift 2
  if [[ "$skip" == *",$name,"* ]]; then
    say "$name: skipped (--skip)"
    echo '{"skipped": "--skip"}' >"$st/$name.json"
    return 1
  fi
  if [ "$xla_failed" = 1 ]; then
    echo '{"skipped": "XLA plugin did not load"}' >"$st/$name.json"
    return 1
  fi
  local left=$((budget - (SECONDS - start_s)))
  if [ "$left" -le 10 ]; then
    say "$name: skipped (budget of ${budget}s spent)"
    echo "{\"skipped\": \"budget spent\"}" >"$st/$name.json"
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local sampler=""
  if command -v nvidia-smi >/dev/null 2>&1 && [ $dry = 0 ]; then
    (while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1; sleep 0.2; done) >"$st/$name.gpumem.samples" &
    sampler=$!
  fi
  local t0=$SECONDS rc
  say "$name: $* (limit ${limit}s)"
  timeout "$limit" "$@" >"$st/$name.json" 2>>"$log"
  rc=$?
  if [ -n "$sampler" ]; then
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    sort -n "$st/$name.gpumem.samples" | tail -1 >"$st/$name.gpumem"
    rm -f "$st/$name.gpumem.samples"
  fi
  say "$name: exit $rc after $((SECONDS - t0))s"
  echo "$rc" >"$st/$name.rc"
  return $rc
}

S="$shared"
# --- 0. what is there ---------------------------------------------------------------------
run backends 60 "$bin" backends --probe --json
# Every command would fall back to the go backend if the plugin did not load: on a GPU machine
# that would time 1B-parameter models on the CPU and call it a GPU result. Stop instead.
if [ $dry = 0 ] && ! python3 - "$st/backends.json" "$backend" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
p = [p for p in info.get("probes", []) if p["spec"] == sys.argv[2]]
ok = bool(p) and p[0]["ok"]
print("device-check: probe %s: %s" % (sys.argv[2], ("ok: " + "; ".join(p[0].get("devices", []))) if ok else (p[0].get("error") if p else "not probed")), file=sys.stderr)
sys.exit(0 if ok else 1)
PY
then
  say "the XLA plugin did not load; conformance and speed steps skipped (see the log)"
  xla_failed=1
fi

want() { [[ "$parts" == *",$1,"* ]]; }
if want stages && ! want conformance && ! want speed; then
  # The 7B stage table alone: its own script, budget and files.
  stage_args=(--bin "$bin" --shared "$shared" --work "$work/stages" --budget "$budget")
  [ $dry = 1 ] && stage_args+=(--dry-run) || stage_args+=(--plugin "$plugin")
  exec "$here/device-stages.sh" "${stage_args[@]}"
fi
if ! want conformance; then skip="$skip,golden_stories260K,golden_stories260K_tf32,golden_deep16,golden_stories260K_onehot,golden_deep16_bf16,"; fi
if ! want speed; then skip="$skip,init,prune,prune_width,hf_peer,ppl_full,ppl_pruned,speed,"; fi

# --- 1. conformance -----------------------------------------------------------------------
run golden_stories260K 90 "$bin" --quiet check-golden --json --model "$S/models/stories260K" \
  --golden "$S/goldens/stories260K.forward.json" --text "$S/goldens/stories260K.greedy200.txt"
# shortllm keeps float32 exact on CUDA (NVIDIA_TF32_OVERRIDE=0, no Triton GEMMs); with the
# plugin option tf32, as XLA does by default, the logits are off by ~1e-3: shown, not counted.
tf32_backend="$GOMLX_BACKEND,tf32"
[ $dry = 1 ] && tf32_backend="$GOMLX_BACKEND" # the go backend has no such option
GOMLX_BACKEND="$tf32_backend" run golden_stories260K_tf32 90 "$bin" --quiet check-golden --json --model "$S/models/stories260K" \
  --golden "$S/goldens/stories260K.forward.json"
if [ $dry = 0 ] && [ "$(cat "$st/golden_stories260K.rc")" != 0 ]; then
  # cuBLAS obeys the override; XLA's Triton GEMMs may not. Try without them.
  XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_enable_triton_gemm=false" run golden_stories260K_notriton 90 "$bin" --quiet \
    check-golden --json --model "$S/models/stories260K" --golden "$S/goldens/stories260K.forward.json" --text "$S/goldens/stories260K.greedy200.txt"
  if [ "$(cat "$st/golden_stories260K_notriton.rc")" = 0 ]; then
    say "float32 goldens pass only without Triton GEMMs: the remaining f32 checks run so"
    export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_enable_triton_gemm=false"
  fi
fi
run golden_deep16 90 "$bin" --quiet check-golden --json --model "$S/models/deep16" --golden "$S/goldens/deep16.forward.json"
SHORTLLM_KV_UPDATE=onehot run golden_stories260K_onehot 90 "$bin" --quiet check-golden --json \
  --model "$S/models/stories260K" --golden "$S/goldens/stories260K.forward.json" --text "$S/goldens/stories260K.greedy200.txt"
# If the in-place cache fails where the one-hot one passes, measure speed with one-hot (and
# the table shows the failure).
dus_rc="$(cat "$st/golden_stories260K.rc")"
[ -f "$st/golden_stories260K_notriton.rc" ] && dus_rc="$(cat "$st/golden_stories260K_notriton.rc")"
if [ "$dus_rc" != 0 ] && [ "$(cat "$st/golden_stories260K_onehot.rc")" = 0 ]; then
  say "in-place KV cache failed its golden; speed runs use SHORTLLM_KV_UPDATE=onehot"
  export SHORTLLM_KV_UPDATE=onehot
fi
run golden_deep16_bf16 90 "$bin" --quiet check-golden --json --dtype bf16 --model "$S/models/deep16" --golden "$S/goldens/deep16.forward.json"

# --- 2. speed -----------------------------------------------------------------------------
if [ $dry = 1 ]; then
  config="$here/tiny-dry-run.json" tokdir="$S/tokenizers/llama2"
  head -c 20000 "$S/data/wikitext2/wiki.test.raw" >"$work/wiki.small.raw"
  data="$work/wiki.small.raw"
  seq=64 pbatch=2 chunks=4 sizes=1,2 newtok=8 plen=16 runs=1 warm=0 peerdev=cpu
else
  config="$here/llama-3.2-1b.json" tokdir="$S/tokenizers/llama3"
  data="$S/data/wikitext2/wiki.test.raw"
  # 4 batches of 8 × 1024: the first compiles the graph, the other 3 are the steady rate.
  seq=1024 pbatch=8 chunks=32 sizes=1,16,64 newtok=128 plen=128 runs=2 warm=1 peerdev=cuda
  # Let the CUDA client grow its pool, so nvidia-smi shows what the run needed.
  export GOMLX_BACKEND="$backend,noprealloc"
fi
full="$work/llama-full" pruned="$work/llama-pruned"
L="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' "$config")"
n=$(((L * 35 + 50) / 100))
# Remove n blocks ending two before the last (the paper's "+" policy keeps the last two):
# which blocks go does not change the cost, only how many.
first=$((L - 2 - n))
blocks="$(seq -s, "$first" $((L - 3)))"
run init 240 "$bin" --quiet init --json --config "$config" --out "$full" --tokenizer "$tokdir" --save-dtype bf16 --seed 1 --force
run prune 240 "$bin" --quiet prune --json --model "$full" --out "$pruned" --blocks "$blocks" --force
# Width pruning at the same 35% of the parameters (Wanda-sp: the same share of KV groups and FFN
# channels in every block, so a standard config): same parameter count, all blocks kept — the
# paper's depth-vs-width speed comparison. Random weights: only the shapes matter here.
# (The dry run's tiny model is mostly embeddings: 2% of it is half its blocks.)
wpruned="$work/llama-width" wratio=35%
[ $dry = 1 ] && wratio=2%
run prune_width 180 "$bin" --quiet prune --json --model "$full" --out "$wpruned" --width --criterion wanda-sp \
  --ratio "$wratio" --calib "$S/data/stories/calib10x128.jsonl" --calib-samples 4 --seq-len 64 --force
compare=("$pruned")
[ -f "$wpruned/config.json" ] && compare+=("$wpruned")

# --- the peer (before our timings, so a slow step of ours cannot crowd it out) ----------
if [ $skip_peer = 1 ]; then
  echo '{"skipped": "--skip-peer"}' >"$st/hf_peer.json"
elif ! python3 -c 'import torch, transformers' 2>/dev/null; then
  say "hf_peer: skipped (python3 has no torch/transformers)"
  echo '{"skipped": "torch/transformers missing"}' >"$st/hf_peer.json"
else
  run hf_peer 240 python3 "$here/hf_peer.py" --model "$full" --pruned "$pruned" --device "$peerdev" \
    --seq-len "$seq" --batch-size "$pbatch" --batches $((chunks / pbatch)) --batch-sizes "$sizes" \
    --new-tokens "$newtok" --prompt-len "$plen" --runs "$runs" --warmup "$warm"
fi

ppl_args=(--wikitext2 "$data" --bos once --seq-len "$seq" --batch-size "$pbatch" --max-chunks "$chunks" --dtype bf16)
run ppl_full 150 "$bin" --quiet --json eval ppl --model "$full" "${ppl_args[@]}"
run ppl_pruned 120 "$bin" --quiet --json eval ppl --model "$pruned" "${ppl_args[@]}"
run speed 240 "$bin" --quiet --json eval speed --model "$full" --compare "$(IFS=,; echo "${compare[*]}")" --batch-sizes "$sizes" \
  --new-tokens "$newtok" --prompt-len "$plen" --runs "$runs" --warmup "$warm" --dtype bf16

# --- summary ------------------------------------------------------------------------------
python3 "$here/device_summary.py" --out "$st" --device "$device" --layers "$L" --removed "$n" \
  --blocks "$blocks" --dry-run "$dry" --wall "$((SECONDS - start_s))" >"$st/device-check.txt"
rc=$?
cp "$st/device-check.json" "$st/device-check.txt" "$out/" 2>/dev/null
tar -czf "$out/steps.tar.gz" -C "$st" .
cat "$out/device-check.txt"
if want stages; then
  say "part stages: run scripts/device-check.sh --parts stages in a call of its own (it needs ~500 s)"
fi
[ "$xla_failed" = 1 ] && exit 3
exit $rc
