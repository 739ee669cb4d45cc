package release

import "testing"

func TestValidVersion(t *testing.T) {
	for v, want := range map[string]bool{
		"v0.2.0": true, "v1.0.0-rc.1": true, "v10.20.30": true,
		"0.2.0": false, "v0.2": false, "v0.2.0+build": false, "v0.2.0-": false, "": false, "v0.2.0\n": false, "latest": false,
	} {
		if got := ValidVersion(v); got != want {
			t.Errorf("ValidVersion(%q) = %v, want %v", v, got, want)
		}
	}
}
