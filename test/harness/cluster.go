package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
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
	// Certificates in a directory of our own survive a restart of
	// kube-apiserver (see StopAPIServer), so clients keep working. A
	// component still draining its watches after a few seconds is killed.
	env.ControlPlaneStopTimeout = 5 * time.Second
	api := env.ControlPlane.GetAPIServer()
	api.CertDir = filepath.Join(dir, "apiserver")
	// Certificates of an earlier cluster in the same directory (make dev
	// run again) would be served without their CA, which envtest makes
	// only for certificates it issues itself: start afresh.
	if err := os.RemoveAll(api.CertDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(api.CertDir, 0o700); err != nil {
		return nil, err
	}
	// There is no kube-proxy to route a Service's cluster IP: the API
	// server calls a webhook's Service at its EndpointSlices' addresses
	// instead, picking one at random each time, which lets a test put
	// replicas behind it (at the machine's own address: EndpointSlices
	// refuse loopback ones).
	api.Configure().Set("enable-aggregator-routing", "true")
	// etcd's data in a directory of our own survives a restart of etcd
	// (see StopEtcd); envtest removes a directory it made itself.
	etcdDir := filepath.Join(dir, "etcd")
	if err := os.RemoveAll(etcdDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		return nil, err
	}
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	c := &Cluster{Env: env, Config: cfg, KubectlBin: filepath.Join(env.BinaryAssetsDirectory, "kubectl")}
	if c.Root, err = RepoRoot(); err != nil {
		return nil, c.stopAfter(err)
	}
	if err := CreateManagerNamespace(cfg); err != nil {
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
func (c *Cluster) Stop() error {
	err := c.Env.Stop()
	if err != nil && strings.Contains(err.Error(), "timeout waiting for process") {
		return nil // killed after the stop timeout
	}
	return err
}

// StopAPIServer stops kube-apiserver, leaving etcd running, as an outage
// would. A server still draining its watches is killed after the stop
// timeout, which is not an error here.
func (c *Cluster) StopAPIServer() error {
	err := c.Env.ControlPlane.GetAPIServer().Stop()
	if err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return err
	}
	return nil
}

// StartAPIServer starts kube-apiserver again, on the same address with the
// same certificates.
func (c *Cluster) StartAPIServer() error { return c.Env.ControlPlane.GetAPIServer().Start() }

// StopEtcd stops etcd, leaving kube-apiserver running without its
// storage, as a failure of etcd would.
func (c *Cluster) StopEtcd() error {
	err := c.Env.ControlPlane.Etcd.Stop()
	if err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return err
	}
	return nil
}

// StartEtcd starts etcd again, on the same address with the same data.
func (c *Cluster) StartEtcd() error { return c.Env.ControlPlane.Etcd.Start() }

// Kubectl runs the project's kubectl against the cluster, from the
// repository's root, and returns its standard output; standard error is
// part of the error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlIn(ctx, nil, args...)
}

// KubectlIn is Kubectl with standard input.
func (c *Cluster) KubectlIn(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	return c.KubectlAs(ctx, c.Kubeconfig, stdin, args...)
}

// KubectlAs is KubectlIn with another kubeconfig, such as one of
// KubeconfigWithToken.
func (c *Cluster) KubectlAs(ctx context.Context, kubeconfig string, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.KubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = c.Root
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %v: %w: %s", args, err, stderr.String())
	}
	return stdout.String(), nil
}

// KubeconfigWithToken writes to path a kubeconfig for the cluster that
// presents the bearer token (a ServiceAccount's, say) and nothing else.
func (c *Cluster) KubeconfigWithToken(path, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	cfg.AuthInfos["token"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "token"}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, path)
}

// Component is one of Keywarden's components (keywarden controller,
// verifier or console) running as a process against a Cluster.
type Component struct {
	Cmd *exec.Cmd
	// URL is the base URL of what the component serves: the verifier's
	// endpoints, or the console; MetricsURL that of its metrics, PprofURL
	// that of its Go profiles.
	URL, MetricsURL, PprofURL string
	exited                    chan struct{}
	err                       error
}

// ManagerNamespace is the namespace a manager runs in outside a cluster,
// as config/default deploys it: it keeps the sealing-key Secret.
const ManagerNamespace = "keywarden-system"

// CreateManagerNamespace creates ManagerNamespace.
func CreateManagerNamespace(cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ManagerNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ManagerNamespace, err)
	}
	return nil
}

// StartController starts `keywarden controller` against the cluster with
// its output going to out: metrics (over plain HTTP), probes and profiles
// on free loopback ports. Extra flags follow, and win.
func (c *Cluster) StartController(bin string, out *os.File, extra ...string) (*Component, error) {
	addrs, err := freeAddresses(3)
	if err != nil {
		return nil, err
	}
	args := append([]string{"controller", "--kubeconfig", c.Kubeconfig,
		"--metrics-bind-address", addrs[0], "--metrics-secure=false", "--health-probe-bind-address", addrs[1], "--pprof-bind-address", addrs[2]}, extra...)
	return start(bin, out, args, "", "http://"+addrs[0], "http://"+addrs[2])
}

// StartVerifier starts `keywarden verifier` against the cluster with its
// output going to out, serving at addr (a free loopback port when empty),
// its metrics over plain HTTP and its profiles on free loopback ports.
// Extra flags follow, and win.
func (c *Cluster) StartVerifier(bin string, out *os.File, addr string, extra ...string) (*Component, error) {
	addrs, err := freeAddresses(3)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		addr = addrs[2]
	}
	args := append([]string{"verifier", "--kubeconfig", c.Kubeconfig,
		"--metrics-bind-address", addrs[0], "--metrics-secure=false", "--pprof-bind-address", addrs[1], "--verifier-bind-address", addr}, extra...)
	return start(bin, out, args, "http://"+addr, "http://"+addrs[0], "http://"+addrs[1])
}

// StartConsole starts `keywarden console` against the cluster at addr (a
// free loopback port when empty). Extra flags follow, and win.
func (c *Cluster) StartConsole(bin string, out *os.File, addr string, extra ...string) (*Component, error) {
	if addr == "" {
		var err error
		if addr, err = freeAddress(); err != nil {
			return nil, err
		}
	}
	args := append([]string{"console", "--kubeconfig", c.Kubeconfig, "--console-bind-address", addr}, extra...)
	return start(bin, out, args, "http://"+addr, "", "")
}

// StartBinary starts any binary as a Component, such as the manager of an
// earlier release, with its own arguments; url, metrics and pprof are what
// it serves, as the Component records them.
func StartBinary(bin string, out *os.File, args []string, url, metrics, pprof string) (*Component, error) {
	return start(bin, out, args, url, metrics, pprof)
}

// SeparateProcessGroups starts each component in a process group of its
// own, as envtest starts etcd and kube-apiserver: a Ctrl-C at the terminal
// then reaches only whoever started them (make dev), which stops them in
// order. Tests leave it off, so that a test interrupted or timed out takes
// its components with it.
var SeparateProcessGroups bool

func start(bin string, out *os.File, args []string, url, metrics, pprof string) (*Component, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if SeparateProcessGroups {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s %v: %w", bin, args, err)
	}
	m := &Component{Cmd: cmd, URL: url, MetricsURL: metrics, PprofURL: pprof, exited: make(chan struct{})}
	go func() { m.err = cmd.Wait(); close(m.exited) }()
	return m, nil
}

// freeAddress is a free loopback address.
func freeAddress() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}

// freeAddresses are n free loopback addresses, distinct.
func freeAddresses(n int) ([]string, error) {
	var out []string
	for len(out) < n {
		a, err := freeAddress()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// Exited is closed when the process has exited; Err then says how.
func (m *Component) Exited() <-chan struct{} { return m.exited }

// Err is the process's exit error, once Exited is closed.
func (m *Component) Err() error { return m.err }

// Stop sends SIGTERM and waits for the process to exit, killing it after
// the timeout.
func (m *Component) Stop(timeout time.Duration) {
	_ = m.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(timeout):
		m.Kill()
	}
}

// Kill sends SIGKILL, as a crash would, and waits for the process to exit.
func (m *Component) Kill() {
	_ = m.Cmd.Process.Kill()
	<-m.exited
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
