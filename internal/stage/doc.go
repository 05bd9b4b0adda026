// Package stage is shortllm's library API: one entry point per stage (open a model, score,
// prune, retrain, merge, evaluate perplexity), each an options struct and a call on an
// Engine. The shortllm verbs and the pipeline are two front ends over it; they translate
// flags or a pipeline.yaml into these structs and format what comes back. Errors name the
// problem (a file, a block, a value), not a flag: front ends own their flag names.
package stage
