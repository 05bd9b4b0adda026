// Package safetensors reads and writes the safetensors format used by Hugging Face
// checkpoints, and whole checkpoints that may be split into shards listed in
// model.safetensors.index.json.
//
// Files are treated as untrusted input, in the style of archive/zip: the header
// length is checked against the file size before anything is allocated, every
// tensor's dtype, shape and data offsets are validated when the file is opened,
// and every error is a single line naming the file. Callers can classify errors
// with errors.Is against the Err* sentinels.
//
// Tensor data is never buffered as a whole file: ReadFloat32 and ReadRaw read one
// tensor with ReadAt straight into the slice they return.
package safetensors
