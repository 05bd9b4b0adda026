#!/bin/sh
# Rebuilds testdata/demo — the small model `make demo` prunes — with shortllm's own verbs, from
# the public-domain text every Go installation ships (Newton's Opticks, src/testdata):
#   1. demo-data: paragraphs → byte-level BPE tokenizer, config.json and the demo's data files
#   2. init:      random LLaMA weights for that config (seeded)
#   3. retrain:   pretraining (the CPT mode) on the training paragraphs: 256 updates of 4×128
#                 tokens; many small updates get a tiny model past the unigram plateau sooner
# Every step is seeded and single-run, so the same Go toolchain rebuilds the same files.
set -eu
BIN=${BIN:-bin/shortllm}
DEMO=${DEMO:-testdata/demo}
STEPS=${STEPS:-256}
TEXT="$(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BIN" demo-data --text "$TEXT" --out "$DEMO" --work "$WORK"
"$BIN" init --config "$DEMO/config.json" --tokenizer "$DEMO/tokenizer" --out "$WORK/init" --seed 1
"$BIN" retrain --model "$WORK/init" --out "$WORK/model" --mode cpt --data "$WORK/train.jsonl" \
	--seq-len 128 --batch-size 4 --micro-batch-size 4 --lr 3e-3 --warmup-steps 16 --schedule cosine \
	--max-steps "$STEPS" --seed 1
rm -rf "$DEMO/model"
mv "$WORK/model" "$DEMO/model"
chmod 755 "$DEMO/model"
echo "demo model: $DEMO/model ($(du -sh "$DEMO/model" | cut -f1))"
