package release

import (
	"bytes"
	"fmt"
	"regexp"
)

// anyImage is a container's image, whichever.
var anyImage = regexp.MustCompile(`(?m)^\s*(?:- )?image: \S`)

// PinImage names image (repository:tag@digest) wherever manifests name
// from as a container's image. Manifests without containers (an add-on,
// such as a policy) are left as they are; manifests whose containers run
// other images only, or that name from elsewhere, are refused: a static
// manifest still naming the development image would install nothing
// that runs.
func PinImage(manifests []byte, from, image string) ([]byte, error) {
	re := regexp.MustCompile(`(?m)^(\s*(?:- )?image: )` + regexp.QuoteMeta(from) + `[ \t]*$`)
	if !anyImage.Match(manifests) && !bytes.Contains(manifests, []byte(from)) {
		return manifests, nil
	}
	if !re.Match(manifests) {
		return nil, fmt.Errorf("no container's image is %s", from)
	}
	out := re.ReplaceAll(manifests, []byte("${1}"+image))
	if bytes.Contains(out, []byte(from)) {
		return nil, fmt.Errorf("%s is still named outside a container's image", from)
	}
	return out, nil
}
