package main

import (
	_ "github.com/gomlx/gomlx/backends/simplego"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/cobra"
)

func main() {}
