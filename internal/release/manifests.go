package release

import (
	"bytes"
	"fmt"
	"regexp"
)

// PinImage names image (repository:tag@digest) wherever manifests name
// from as a container's image, and fails when they name it nowhere: a
// static manifest that still names the development image would install
// nothing that runs.
func PinImage(manifests []byte, from, image string) ([]byte, error) {
	re := regexp.MustCompile(`(?m)^(\s*(?:- )?image: )` + regexp.QuoteMeta(from) + `[ \t]*$`)
	if !re.Match(manifests) {
		return nil, fmt.Errorf("no container's image is %s", from)
	}
	out := re.ReplaceAll(manifests, []byte("${1}"+image))
	if bytes.Contains(out, []byte(from)) {
		return nil, fmt.Errorf("%s is still named outside a container's image", from)
	}
	return out, nil
}
