package release

import (
	"strings"
	"testing"
)

func TestPinImage(t *testing.T) {
	const pinned = "ghcr.io/keywarden/keywarden:v0.9.0@sha256:0123"
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{"a container's image", "containers:\n  - name: manager\n    image: keywarden:dev\n", "containers:\n  - name: manager\n    image: " + pinned + "\n", ""},
		{"an image first in its item", "containers:\n  - image: keywarden:dev\n    name: manager\n", "containers:\n  - image: " + pinned + "\n    name: manager\n", ""},
		{"two components", "    image: keywarden:dev\n---\n    image: keywarden:dev\n", "    image: " + pinned + "\n---\n    image: " + pinned + "\n", ""},
		{"an add-on without containers", "kind: ConfigMap\n", "kind: ConfigMap\n", ""},
		{"containers of other images only", "    image: busybox:1.36\n", "", "no container's image is keywarden:dev"},
		{"the image named elsewhere too", "    image: keywarden:dev\n  note: built from keywarden:dev\n", "", "still named outside"},
		{"another image left alone", "    image: keywarden:dev\n    image: busybox:1.36\n", "    image: " + pinned + "\n    image: busybox:1.36\n", ""},
	} {
		got, err := PinImage([]byte(tc.in), "keywarden:dev", pinned)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || string(got) != tc.want):
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
