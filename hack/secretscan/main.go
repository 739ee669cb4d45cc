// Command secretscan prints secret-scanning rules for Keywarden keys of the
// given class prefixes (kw_ when none): a gitleaks configuration, or the
// fields of a GitHub secret scanning custom pattern.
//
//	go run ./hack/secretscan -gitleaks kw_ pdm_ > gitleaks.toml
//	go run ./hack/secretscan -github kw_ pdm_
package main

import (
	"flag"
	"fmt"
	"os"

	"keywarden.dev/keywarden/internal/keys"
)

func main() {
	gitleaks := flag.Bool("gitleaks", false, "print a gitleaks configuration")
	github := flag.Bool("github", false, "print a GitHub secret scanning custom pattern")
	flag.Parse()
	prefixes := flag.Args()
	if len(prefixes) == 0 {
		prefixes = []string{keys.DefaultPrefix}
	}
	for _, p := range prefixes {
		if !keys.ValidPrefix(p) {
			fmt.Fprintf(os.Stderr, "%q is not a key prefix: 2 to 12 characters of [a-z0-9] ending in _\n", p)
			os.Exit(2)
		}
	}
	switch {
	case *gitleaks == *github:
		fmt.Fprintln(os.Stderr, "use one of -gitleaks and -github")
		os.Exit(2)
	case *gitleaks:
		fmt.Print(keys.GitleaksConfig(prefixes))
	default:
		fmt.Printf("Secret format: %s\nBefore secret: %s\nAfter secret:  %s\n", keys.ScanFormat(prefixes), keys.ScanBefore, keys.ScanAfter)
	}
}
