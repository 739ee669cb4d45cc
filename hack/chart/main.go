// Command chart writes the generated parts of the Helm chart
// charts/keywarden from config/ (see internal/chartgen): a template for
// each object of the installs, and the CRDs. With -check it writes
// nothing and fails when the chart differs from what it would write.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"keywarden.dev/keywarden/internal/chartgen"
	"keywarden.dev/keywarden/test/harness"
)

func main() {
	check := flag.Bool("check", false, "fail when the chart differs from config/, writing nothing")
	flag.Parse()
	root, err := harness.RepoRoot()
	if err != nil {
		fail(err)
	}
	files, err := chartgen.Generate(root, harness.Kustomize)
	if err != nil {
		fail(err)
	}
	chart := filepath.Join(root, "charts", "keywarden")
	if *check {
		if diff := chartgen.Compare(chart, files); len(diff) > 0 {
			fail(fmt.Errorf("charts/keywarden differs from config/ (run make chart):\n  %s", strings.Join(diff, "\n  ")))
		}
		return
	}
	if err := chartgen.Write(chart, files); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
