// Command shortllm prunes whole Transformer blocks from LLaMA-family models, retrains them
// and measures what was lost (Kim et al., 2024, "Shortened LLaMA").
package main

import (
	"os"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
