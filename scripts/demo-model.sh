#!/bin/sh
# Rebuilds testdata/demo — the small model `make demo` prunes — with shortllm's own verbs, from
# the public-domain text every Go installation ships (Newton's Opticks, src/testdata):
#   1. demo-data: paragraphs → byte-level BPE tokenizer, config.json and the demo's data files
#   2. init:      random LLaMA weights for that config (seeded)
#   3. retrain:   pretraining (the CPT mode) on the training paragraphs: 576 updates of 4×128
#                 tokens (about 1.4 epochs), peak lr 5e-3 with a cosine decay; many small updates
#                 get a tiny model past the unigram plateau sooner, and enough of them make its
#                 blocks matter (256 updates at 3e-3 left held-out perplexity at 91, where
#                 removing 2 of 10 blocks cost under 1%)
# Every step is seeded and single-run, so the same Go toolchain rebuilds the same files.
set -eu
BIN=${BIN:-bin/shortllm}
DEMO=${DEMO:-testdata/demo}
STEPS=${STEPS:-576}
TEXT="$(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BIN" demo-data --text "$TEXT" --out "$DEMO" --work "$WORK"
"$BIN" init --config "$DEMO/config.json" --tokenizer "$DEMO/tokenizer" --out "$WORK/init" --seed 1
"$BIN" retrain --model "$WORK/init" --out "$WORK/model" --mode cpt --data "$WORK/train.jsonl" \
	--seq-len 128 --batch-size 4 --micro-batch-size 4 --lr 5e-3 --warmup-steps 24 --schedule cosine \
	--max-steps "$STEPS" --seed 1
rm -rf "$DEMO/model"
mv "$WORK/model" "$DEMO/model"
# The demo ships a bare tokenizer.json: tests check that saving such a model writes its own
# tokenizer_config.json, and the output marker only matters to shortllm's --force.
rm -f "$DEMO/model/tokenizer_config.json" "$DEMO/model/.shortllm-output"
chmod 755 "$DEMO/model"
echo "demo model: $DEMO/model ($(du -sh "$DEMO/model" | cut -f1))"
