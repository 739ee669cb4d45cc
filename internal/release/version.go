package release

import "regexp"

var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

// ValidVersion is whether v is a release's version: a semantic version
// with a leading v, such as v0.2.0 or v1.0.0-rc.1 (krew and Helm need one;
// the chart's version is it without the v).
func ValidVersion(v string) bool { return semver.MatchString(v) }
