package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

// How Helm keeps a chart in an OCI registry: the chart's metadata as the
// config, the packaged chart as the one layer.
const (
	ChartConfigMediaType  types.MediaType = "application/vnd.cncf.helm.config.v1+json"
	ChartContentMediaType types.MediaType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

var imageValue = regexp.MustCompile(`^(  (repository|tag|digest):)( .*)?$`)

// SetImageValues points the chart's values.yaml at the released image:
// the repository, tag and digest keys under the top-level image key are
// rewritten in place, so that the comments a Helm user reads stay.
func SetImageValues(values []byte, repository, tag, digest string) ([]byte, error) {
	want := map[string]string{"repository": repository, "tag": tag, "digest": digest}
	seen := map[string]bool{}
	lines := strings.Split(string(values), "\n")
	in := false
	for i, line := range lines {
		if line != "" && line[0] != ' ' && line[0] != '#' {
			in = line == "image:"
			continue
		}
		if !in {
			continue
		}
		if m := imageValue.FindStringSubmatch(line); m != nil {
			if seen[m[2]] {
				return nil, fmt.Errorf("values.yaml: image.%s is given twice", m[2])
			}
			seen[m[2]] = true
			lines[i] = m[1] + " " + quote(want[m[2]])
		}
	}
	for _, k := range []string{"repository", "tag", "digest"} {
		if !seen[k] {
			return nil, fmt.Errorf("values.yaml: no image.%s to set", k)
		}
	}
	return []byte(strings.Join(lines, "\n")), nil
}

// quote writes s as a double-quoted YAML string (JSON's string is one),
// so that a tag such as 1.0 stays a string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ChartMetadata reads Chart.yaml from a packaged chart (a .tgz as helm
// package writes it).
func ChartMetadata(tgz []byte) (map[string]any, error) {
	gz, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the packaged chart has no Chart.yaml")
		}
		if err != nil {
			return nil, err
		}
		if strings.Count(h.Name, "/") != 1 || path.Base(h.Name) != "Chart.yaml" {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("the chart's Chart.yaml: %w", err)
		}
		return m, nil
	}
}

// PushChart writes a packaged chart to repo (whose last element must be
// the chart's name, as Helm asks) under its version, as helm push does,
// and returns its reference by digest.
func PushChart(repo name.Repository, tgz []byte, created time.Time, opts ...remote.Option) (name.Digest, error) {
	meta, err := ChartMetadata(tgz)
	if err != nil {
		return name.Digest{}, err
	}
	chartName, _ := meta["name"].(string)
	version, _ := meta["version"].(string)
	if chartName == "" || version == "" {
		return name.Digest{}, errors.New("the chart's Chart.yaml has no name or version")
	}
	if path.Base(repo.RepositoryStr()) != chartName {
		return name.Digest{}, fmt.Errorf("a chart named %s is kept in a repository ending in /%s, not %s", chartName, chartName, repo)
	}
	config, err := yaml.Marshal(meta)
	if err != nil {
		return name.Digest{}, err
	}
	if config, err = yaml.YAMLToJSON(config); err != nil {
		return name.Digest{}, err
	}
	m := artifact{
		config: static.NewLayer(config, ChartConfigMediaType),
		layers: []artifactLayer{{layer: static.NewLayer(tgz, ChartContentMediaType)}},
		annotations: map[string]string{
			"org.opencontainers.image.title":   chartName,
			"org.opencontainers.image.version": version,
			"org.opencontainers.image.created": created.UTC().Format(time.RFC3339),
		},
	}
	if d, ok := meta["description"].(string); ok {
		m.annotations["org.opencontainers.image.description"] = d
	}
	return m.push(repo, strings.ReplaceAll(version, "+", "_"), opts...)
}
