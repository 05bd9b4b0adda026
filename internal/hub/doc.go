// Package hub resolves --model values to a local checkpoint directory: either a
// directory given as-is, or a Hugging Face id "org/name[@revision]" looked up in,
// and if needed downloaded into, the standard huggingface_hub cache
// (models--org--name/{refs,snapshots,blobs}), so that the Python tools and
// shortllm share downloads.
//
// A snapshot already in the cache that holds a complete checkpoint is used without
// any network request, even for a branch revision such as "main": pruning runs
// should be reproducible and work offline. Downloads fetch only the files a
// checkpoint needs, resume partial files with HTTP Range requests, and never
// follow file names from the server outside the cache directory.
package hub
