// Package harness starts Keywarden's local control plane: etcd and
// kube-apiserver built from the Go module proxy by hack/controlplane.sh, with
// the CRDs from config/crd installed. The integration tests, the end-to-end
// tests and `make dev` all start it through this package.
package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot returns the directory of Keywarden's go.mod, found upwards from
// the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module keywarden.dev/keywarden\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the Keywarden repository")
		}
		dir = parent
	}
}

// KubeVersion is the local control plane's Kubernetes version, as
// 1.37.2: what hack/controlplane/go.mod pins (the binaries, built from
// the module proxy, report none of their own). helm template is given it,
// as it otherwise assumes an old default.
func KubeVersion() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "hack", "controlplane", "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "k8s.io/kubernetes" {
			return strings.TrimPrefix(f[1], "v"), nil
		}
	}
	return "", errors.New("hack/controlplane/go.mod requires no k8s.io/kubernetes")
}

// Assets returns the directory that holds etcd, kube-apiserver and kubectl:
// KUBEBUILDER_ASSETS when set, otherwise the one hack/controlplane.sh builds
// (or has built) under bin/.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "hack", "controlplane.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the control plane with hack/controlplane.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// assetsAndRoot returns Assets and RepoRoot.
func assetsAndRoot() (assets, root string, err error) {
	if assets, err = Assets(); err != nil {
		return "", "", err
	}
	root, err = RepoRoot()
	return assets, root, err
}

// NewEnvironment returns an envtest environment on the local control plane
// binaries with Keywarden's CRDs. It never downloads anything.
func NewEnvironment() (*envtest.Environment, error) {
	assets, root, err := assetsAndRoot()
	if err != nil {
		return nil, err
	}
	return &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}, nil
}
