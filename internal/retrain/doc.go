// Package retrain recovers pruned models as Shortened LLaMA does: LoRA on instruction data
// and continued pretraining (CPT) of every weight on raw text, both with AdamW.
//
//   - Data (data.go): LoadDataset reads alpaca-style instructions (alpaca-lora's prompt
//     template, BOS, cutoff, EOS when it fits, prompt labels −100 unless TrainOnInputs), raw
//     text packed into blocks (run_clm's group_texts, EOS after each document) and
//     pre-tokenised batches (taken in file order).
//   - LoRA (lora.go): PEFT-compatible adapters (adapter_config.json, adapter_model.safetensors
//     with PEFT key names), PEFT initialisation, scale alpha/r or alpha/√r, Merge and
//     MergeAdapter (W += scale·B·A) for eval/generate --adapter and `shortllm merge`.
//   - Trainer (train.go): one GoMLX graph per update that differentiates only the trained
//     tensors and applies torch's AdamW (optim.go) with global-norm clipping; HF schedules
//     with warmup (the first update uses lambda(0), as LambdaLR does).
//   - Dtypes: LoRA trains float32 adapters (their path, gradients and AdamW state float32) on
//     a base of any compute dtype. CPT trains float32 weights, or — chosen by the loaded
//     model's dtype — bfloat16 weights with a float32 master copy: forward and backward run on
//     the bf16 weights, gradients are accumulated and AdamW's moments kept in float32, the
//     update goes to the master and the bf16 weights are re-cast from it (round to nearest)
//     after every update. Checkpoints hold the master; a job writes the master in each
//     tensor's stored dtype. (bf16 weights with float32 moments alone would lose every update
//     smaller than half a bf16 ulp: Adam moves a weight by about lr, and at lr 1e-4 that is
//     below half an ulp for every weight above 1/32 in magnitude.)
//   - Remat (remat.go, Options.Remat): the same gradients from model.Runner.RematTrain, which
//     recomputes each block in the backward from its saved input; RematDefault is the
//     memplan-consistent automatic choice.
//   - Loss normalisation: Σ NLL over the label tokens of the whole batch divided by their
//     count, whatever the micro-batching (HF's num_items_in_batch for causal LMs); labels are
//     shifted by one inside the trainer (HF convention: data carries unshifted labels).
//   - Resume (ckpt.go): checkpoints hold the trained tensors, both AdamW moments and the best
//     validation copy in float32; data order and dropout masks derive from (seed, update), so
//     a resumed run is bit-identical to an uninterrupted one.
//   - Job (run.go): the `shortllm retrain` run, its output layout and its checkpoint directory.
package retrain
