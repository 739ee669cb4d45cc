package release

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// EmptyConfigMediaType is OCI's config of an artifact that needs none.
const EmptyConfigMediaType types.MediaType = "application/vnd.oci.empty.v1+json"

// artifact is an OCI manifest that is not a container image: a chart, or
// an SBOM that refers to the image it describes.
type artifact struct {
	artifactType types.MediaType
	config       v1.Layer
	layers       []artifactLayer
	annotations  map[string]string
	subject      *v1.Descriptor
}

type artifactLayer struct {
	layer       v1.Layer
	annotations map[string]string
}

// rawManifest is what remote.Put writes.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

func descriptor(l v1.Layer, annotations map[string]string) (v1.Descriptor, error) {
	d, err := partial.Descriptor(l)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d.Annotations = annotations
	return *d, nil
}

// push writes the artifact's blobs and then its manifest to repo, under
// tag or (without one) by its digest, and returns its reference by digest.
func (a artifact) push(repo name.Repository, tag string, opts ...remote.Option) (name.Digest, error) {
	config, err := descriptor(a.config, nil)
	if err != nil {
		return name.Digest{}, err
	}
	m := struct {
		SchemaVersion int64             `json:"schemaVersion"`
		MediaType     types.MediaType   `json:"mediaType"`
		ArtifactType  types.MediaType   `json:"artifactType,omitempty"`
		Config        v1.Descriptor     `json:"config"`
		Layers        []v1.Descriptor   `json:"layers"`
		Subject       *v1.Descriptor    `json:"subject,omitempty"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: a.artifactType, Config: config, Subject: a.subject, Annotations: a.annotations}
	if err := remote.WriteLayer(repo, a.config, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("writing to %s: %w", repo, err)
	}
	for _, l := range a.layers {
		d, err := descriptor(l.layer, l.annotations)
		if err != nil {
			return name.Digest{}, err
		}
		m.Layers = append(m.Layers, d)
		if err := remote.WriteLayer(repo, l.layer, opts...); err != nil {
			return name.Digest{}, fmt.Errorf("writing to %s: %w", repo, err)
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return name.Digest{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return name.Digest{}, err
	}
	var ref name.Reference = repo.Digest(h.String())
	if tag != "" {
		ref = repo.Tag(tag)
	}
	if err := remote.Put(ref, rawManifest{raw: raw, mt: types.OCIManifestSchema1}, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("writing %s: %w", ref, err)
	}
	return repo.Digest(h.String()), nil
}

// emptyConfig is the config OCI gives an artifact without one.
func emptyConfig() v1.Layer { return static.NewLayer([]byte("{}"), EmptyConfigMediaType) }
