#!/usr/bin/env bash
# CPU speed of the go (SimpleGo) backend as a ratio to the torch peer, measured in one run:
# perplexity eval, Taylor scoring, a LoRA step and batch-1 greedy generation on the smol125 shape
# (../shared/bench/smol125.json, made with `shortllm init` under runs/ if absent), and
# optionally on more models. Prints a table of tokens/s and shortllm/torch ratios.
#
#   scripts/cpu-ratios.sh                       # smol125, every workload
#   WORKS="ppl generate" MODELS="runs/smol125 ../shared/models/deep16" scripts/cpu-ratios.sh
#   BASE=7d507ea scripts/cpu-ratios.sh          # also the tree at BASE, in the same run
#   THREADS=1 scripts/cpu-ratios.sh             # both sides on one core (torch --threads 1,
#                                               # GOMAXPROCS=1 and SimpleGo parallelism=1)
#
# On a machine shared with other work, torch's two OpenBLAS threads slow down far more than
# shortllm's goroutines when another process holds a core (its figures vary up to 4× between
# runs); THREADS=1 gives the per-core ratio, which contention disturbs much less.
#
# Each workload runs torch, then shortllm (then BASE's shortllm), REPS times interleaved; the
# ratio is the median of the per-repetition ratios. A few minutes per model on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
[ -d "$SHARED/bench" ] || SHARED=/work/shared
PY=${PY:-/usr/bin/python3}
PEER="$SHARED/bench/torch_peer.py"
MODELS=${MODELS:-runs/smol125}
WORKS=${WORKS:-ppl taylor lora generate}
REPS=${REPS:-1}
THREADS=${THREADS:-}
TORCH_T=() GO_ENV=()
if [ -n "$THREADS" ]; then
  TORCH_T=(--threads "$THREADS")
  GO_ENV=(GOMAXPROCS="$THREADS" GOMLX_BACKEND="go:ops_sequential,parallelism=$THREADS")
fi
OUT=${OUT:-runs/cpu-ratios}
mkdir -p "$OUT" bin

go build -o bin/shortllm ./cmd/shortllm
go build -o bin/cpubench ./scripts/cpubench
if [ -n "${BASE:-}" ]; then
  src=$(mktemp -d)
  git archive "$BASE" | tar -x -C "$src"
  mkdir -p "$src/scripts/cpubench" && cp scripts/cpubench/main.go "$src/scripts/cpubench/"
  (cd "$src" && go build -o "$OLDPWD/bin/cpubench-base" ./scripts/cpubench)
  rm -rf "$src"
fi
if [ ! -f runs/smol125/config.json ]; then
  bin/shortllm init --config "$SHARED/bench/smol125.json" --tokenizer "$SHARED/tokenizers/llama2" \
    --out runs/smol125 --seed 1 --quiet
fi

# Same sizes for both sides.
args() {
  case $1 in
    ppl) echo "--chunks 16 --batch 8 --seq 128" ;;
    taylor) echo "--chunks 10 --batch 10 --seq 128" ;; # shortllm: --warmup=false added below
    lora) echo "--batch 4 --seq 128 --steps 2" ;;
    generate) echo "--new 64" ;;
  esac
}
# Taylor is timed without a warm-up run (a whole run takes minutes; SimpleGo compiles in well
# under a second), so its figure includes graph building, as a CLI run would.
own() { [ "$1" = taylor ] && echo "--warmup=false"; true; }
tps() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["tokens_per_s"])'; }

rows=()
for M in $MODELS; do
  name=$(basename "$M")
  for W in $WORKS; do
    rt=() rb=()
    for rep in $(seq "$REPS"); do
      # shellcheck disable=SC2046
      t=$("$PY" "$PEER" "$M" "$W" $(args "$W") "${TORCH_T[@]}" 2>>"$OUT/torch.err" | tps)
      # shellcheck disable=SC2046
      s=$(env "${GO_ENV[@]}" bin/cpubench --model "$M" --work "$W" $(args "$W") $(own "$W") 2>>"$OUT/shortllm.err" | tps)
      r=$(python3 -c "print(f'{$s/$t:.3f}')")
      rt+=("$r")
      line="$name $W rep$rep torch=$t shortllm=$s ratio=$r"
      if [ -x bin/cpubench-base ] && [ -n "${BASE:-}" ]; then
        # shellcheck disable=SC2046
        b=$(env "${GO_ENV[@]}" bin/cpubench-base --model "$M" --work "$W" $(args "$W") $(own "$W") 2>>"$OUT/base.err" | tps)
        rb+=("$(python3 -c "print(f'{$b/$t:.3f}')")")
        line="$line base=$b base_ratio=${rb[-1]}"
      fi
      echo "$line" | tee -a "$OUT/log.txt" >&2
    done
    med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
    row="| $name | $W | $(med "${rt[@]}") | $(printf '%s ' "${rt[@]}")|"
    if [ ${#rb[@]} -gt 0 ]; then row="$row $(med "${rb[@]}") |"; fi
    rows+=("$row")
  done
done
echo
if [ -n "${BASE:-}" ]; then
  echo "| model | work | ratio now (median) | per rep | ratio at $BASE |"
  echo "|---|---|---|---|---|"
else
  echo "| model | work | ratio (median) | per rep |"
  echo "|---|---|---|---|"
fi
printf '%s\n' "${rows[@]}"
