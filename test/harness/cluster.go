package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Cluster is a running local control plane with a kubeconfig for an admin
// user, for the manager binary and kubectl to use.
type Cluster struct {
	Env        *envtest.Environment
	Config     *rest.Config
	Root       string
	Kubeconfig string
	KubectlBin string
}

// StartCluster starts etcd and kube-apiserver, installs the CRDs and writes
// a kubeconfig into dir.
func StartCluster(dir string) (*Cluster, error) {
	env, err := NewEnvironment()
	if err != nil {
		return nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	c := &Cluster{Env: env, Config: cfg, KubectlBin: filepath.Join(env.BinaryAssetsDirectory, "kubectl")}
	if c.Root, err = RepoRoot(); err != nil {
		return nil, c.stopAfter(err)
	}
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "keywarden-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, c.stopAfter(fmt.Errorf("adding an admin user: %w", err))
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, c.stopAfter(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, c.stopAfter(err)
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return nil, c.stopAfter(err)
	}
	return c, nil
}

func (c *Cluster) stopAfter(err error) error {
	_ = c.Env.Stop()
	return err
}

// Stop stops the control plane.
func (c *Cluster) Stop() error { return c.Env.Stop() }

// Kubectl runs the project's kubectl against the cluster and returns its
// standard output; standard error is part of the error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.KubectlBin, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Dir = c.Root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %v: %w: %s", args, err, stderr.String())
	}
	return stdout.String(), nil
}

// StartManager starts the manager binary against the cluster with its
// output going to out. Extra flags follow the defaults, which put the
// metrics and probe endpoints on free loopback ports.
func (c *Cluster) StartManager(bin string, out *os.File, extra ...string) (*exec.Cmd, error) {
	metrics, err := FreePort()
	if err != nil {
		return nil, err
	}
	probes, err := FreePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig", c.Kubeconfig,
		"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(metrics),
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(probes),
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return cmd, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
