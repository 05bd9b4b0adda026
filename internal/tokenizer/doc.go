// Package tokenizer is a pure-Go implementation of the tokenizers used by LLaMA-family
// models: SentencePiece BPE models (tokenizer.model) and Hugging Face tokenizer.json files
// with a BPE model (SentencePiece-style with byte fallback, or byte-level like Llama-3).
//
// Encoding follows the reference implementations exactly on the project's goldens:
// Hugging Face's Rust tokenizers for tokenizer.json and SentencePiece for
// tokenizer.model. In particular, with tokenizer.json the text of added tokens (such as
// "<s>" or "<|begin_of_text|>") is matched in the raw input even when addSpecial is
// false, as Hugging Face does; SentencePiece treats such text as plain characters.
//
// Decode follows Hugging Face's decode(ids, skip_special_tokens=True) without
// clean-up of tokenization spaces.
//
// A Tokenizer is safe for concurrent use.
package tokenizer
