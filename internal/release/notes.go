package release

import (
	"fmt"
	"regexp"
	"strings"
)

var linkDefinition = regexp.MustCompile(`^\[[^\]]+\]: \S+`)

// Notes are a release's notes: its section of a changelog kept in the
// Keep a Changelog form ("## [v0.2.0] - 2026-12-08"), without its heading.
func Notes(changelog, version string) (string, error) {
	var out []string
	in := false
	for line := range strings.SplitSeq(changelog, "\n") {
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			heading := strings.TrimPrefix(line, "## ")
			in = strings.HasPrefix(heading, "["+version+"]") || strings.HasPrefix(heading, version+" ") || heading == version
			continue
		}
		// The links at the changelog's end are the changelog's, not the
		// last release's.
		if in && !linkDefinition.MatchString(line) {
			out = append(out, line)
		}
	}
	notes := strings.TrimSpace(strings.Join(out, "\n"))
	if notes == "" {
		return "", fmt.Errorf("CHANGELOG.md has no notes for %s: add a section \"## [%s] - YYYY-MM-DD\" (the Unreleased section, renamed)", version, version)
	}
	return notes + "\n", nil
}
