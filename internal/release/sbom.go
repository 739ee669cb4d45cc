package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// SBOMMediaType is CycloneDX's JSON, the artifact type of the SBOM that
// refers to the image (oras discover and cosign tree list it).
const SBOMMediaType types.MediaType = "application/vnd.cyclonedx+json"

// SBOM is the CycloneDX bill of materials of the main package main (as
// cmd/keywarden) of the module in dir: every module linked into it, with
// versions and hashes, and the Go standard library with Go's version, as
// cyclonedx-gomod (the tool) reads them from the module graph. Without a
// serial number or a timestamp, it is the same for the same commit.
func SBOM(tool, dir, main string) ([]byte, error) {
	cmd := exec.Command(tool, "app", "-json", "-licenses=false", "-std", "-noserial", "-notimestamp", "-main", main, "-output", "-", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s app: %w: %s", tool, err, stderr.Bytes())
	}
	var doc struct {
		BOMFormat string `json:"bomFormat"`
	}
	if err := json.Unmarshal(out, &doc); err != nil || doc.BOMFormat != "CycloneDX" {
		return nil, errors.New("cyclonedx-gomod wrote no CycloneDX document")
	}
	return out, nil
}

// AttachSBOM writes sbom to the registry as an artifact that refers to
// the image subject (OCI 1.1's referrers; the registry's fallback tag
// where it has no referrers API).
func AttachSBOM(subject name.Digest, sbom []byte, created time.Time, opts ...remote.Option) (name.Digest, error) {
	desc, err := remote.Head(subject, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("reading %s: %w", subject, err)
	}
	sub := v1.Descriptor{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest}
	a := artifact{
		artifactType: SBOMMediaType,
		config:       emptyConfig(),
		layers:       []artifactLayer{{layer: static.NewLayer(sbom, SBOMMediaType), annotations: map[string]string{"org.opencontainers.image.title": "keywarden.cdx.json"}}},
		annotations:  map[string]string{"org.opencontainers.image.created": created.UTC().Format(time.RFC3339)},
		subject:      &sub,
	}
	// Untagged: the subject is what finds it.
	return a.push(subject.Context(), "", opts...)
}
