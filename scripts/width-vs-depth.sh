#!/usr/bin/env bash
# width-vs-depth.sh — deep16 at 20% and 35%: depth (ppl, taylor+) against width (llm-pruner,
# wanda-sp, flap, loraprune). Perplexity on the stories heldout text (BOS once, first 32 chunks
# of 128 tokens) before and after the same short LoRA (10 updates of 8 × 128 tokens, lr 1e-3,
# r 8), and generation throughput at batch 1 and 16 (32 new tokens after a 32-token prompt).
# LoRAPrune trains its own LoRA while pruning (2 rounds × 4 updates + 4, batch 16, lr 1e-3).
#
#   scripts/width-vs-depth.sh [OUT_DIR]      (default /tmp/width-vs-depth; needs bin/shortllm)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
SL="$root/bin/shortllm" S="$root/../shared" OUT="${1:-/tmp/width-vs-depth}"
CAL=$S/data/stories/calib10x128.ids.json TRAIN=$S/data/stories/train.jsonl
mkdir -p "$OUT"
ppl() { "$SL" --quiet eval ppl --model "$1" ${2:+--adapter "$2"} --data "$S/data/stories/heldout.jsonl" --bos once --max-chunks 32 --json |
  python3 -c 'import json,sys; print(round(json.load(sys.stdin)["results"][0]["ppl"], 3))'; }
echo "model ppl_before ppl_after_lora params_after removed%" | tee "$OUT/table.txt"
echo "original $(ppl "$S/models/deep16") - 759872 0" | tee -a "$OUT/table.txt"
models=()
for R in 20 35; do
  for C in ppl taylor+ llm-pruner wanda-sp flap loraprune; do
    M="$OUT/$C-$R"
    case $C in
      ppl|taylor+) "$SL" --quiet prune --model "$S/models/deep16" --out "$M" --ratio $R% --criterion $C --calib "$CAL" --force --json >"$M.prune.json" ;;
      loraprune) "$SL" --quiet prune --model "$S/models/deep16" --out "$M" --width --criterion loraprune --ratio $R% --calib "$CAL" \
        --lora-data "$TRAIN" --rounds 2 --round-steps 4 --lr 1e-3 --force --json >"$M.prune.json" ;;
      *) "$SL" --quiet prune --model "$S/models/deep16" --out "$M" --width --criterion $C --ratio $R% --calib "$CAL" --force --json >"$M.prune.json" ;;
    esac
    models+=("$M")
    P=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['params_after'], round(100*r['removed_ratio'], 1))" "$M.prune.json")
    if [ $C = loraprune ]; then
      echo "$C-$R - $(ppl "$M") $P" | tee -a "$OUT/table.txt"
      continue
    fi
    "$SL" --quiet retrain --model "$M" --out "$M-lora" --mode lora --data "$TRAIN" --max-steps 10 --batch-size 8 \
      --micro-batch-size 8 --lr 1e-3 --seq-len 128 --force >"$M.retrain.log" 2>&1
    echo "$C-$R $(ppl "$M") $(ppl "$M" "$M-lora") $P" | tee -a "$OUT/table.txt"
  done
done
"$SL" --quiet eval speed --model "$S/models/deep16" --compare "$(IFS=,; echo "${models[*]}")" --batch-sizes 1,16 \
  --new-tokens 32 --prompt-len 32 --runs 5 --warmup 1 | tee "$OUT/speed.txt"
