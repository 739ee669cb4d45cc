package release

import (
	"strings"
	"testing"
)

func TestNotes(t *testing.T) {
	const changelog = `# Changelog

## [Unreleased]

### Added
- Something new.

## [v0.2.0] - 2026-12-08

### Changed
- Durations in words.

### Upgrade notes
- Read this.

## [v0.1.0] - 2026-11-01

- First.

[v0.2.0]: https://example.com/v0.2.0
`
	for _, tc := range []struct {
		version, want, err string
	}{
		{"v0.2.0", "### Changed\n- Durations in words.\n\n### Upgrade notes\n- Read this.\n", ""},
		{"v0.1.0", "- First.\n", ""},
		{"Unreleased", "### Added\n- Something new.\n", ""},
		{"v0.3.0", "", `CHANGELOG.md has no notes for v0.3.0: add a section "## [v0.3.0] - YYYY-MM-DD"`},
		{"v0.2", "", "no notes for v0.2:"},
	} {
		got, err := Notes(changelog, tc.version)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error saying %q", tc.version, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: %q, %v; want %q", tc.version, got, err, tc.want)
		}
	}
}
