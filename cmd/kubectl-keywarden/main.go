// Command kubectl-keywarden is the kubectl plugin of Keywarden: put it on
// the PATH and run kubectl keywarden.
package main

import (
	"os"

	"keywarden.dev/keywarden/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
