// Command dev runs Keywarden against a local control plane: it starts etcd
// and kube-apiserver, installs the CRDs, runs the controller, the verifier
// and the console as processes, applies config/samples and shows the keys,
// then keeps everything running until it is interrupted. `make dev` runs
// it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"keywarden.dev/keywarden/test/harness"
)

func main() {
	bin := flag.String("keywarden", "bin/keywarden", "The keywarden binary to run the components with.")
	exit := flag.Bool("exit", false, "Stop once the samples are Ready instead of running until interrupted.")
	flag.StringVar(&dir, "dir", dir, "Where to keep the cluster's data, the kubeconfig and the logs (relative to the repository).")
	flag.StringVar(&verifierAddr, "verifier-address", verifierAddr, "Where to serve the verifier.")
	flag.StringVar(&consoleAddr, "console-address", consoleAddr, "Where to serve the console.")
	flag.Parse()
	harness.SeparateProcessGroups = true
	stop := stopSignals()
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { cancel(errors.New(<-stop)) }()
	err := run(ctx, *bin, *exit)
	if ctx.Err() != nil {
		fmt.Printf("Stopped (%v)\n", context.Cause(ctx))
		err = nil
	}
	restoreTerminal()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

// Where make dev keeps its cluster and serves the verifier and the
// console; flags (make dev DEV_FLAGS=...) change them.
var (
	dir          = filepath.Join("bin", "dev")
	verifierAddr = "127.0.0.1:8090"
	consoleAddr  = "127.0.0.1:8095"
)

func run(stopped context.Context, bin string, exit bool) error {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	dir := dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if err := checkEarlier(filepath.Join(dir, "kubeconfig")); err != nil {
		return err
	}
	fmt.Println("Starting etcd and kube-apiserver")
	cluster, err := harness.StartCluster(dir)
	if err != nil {
		return err
	}
	defer func() { _ = cluster.Stop() }()

	// Each component as a process of its own, as the Deployments of
	// config/ run them; here all with the cluster's admin kubeconfig.
	var (
		components []*harness.Component
		logs       []string
	)
	defer func() {
		for _, c := range components {
			c.Stop(10 * time.Second)
		}
	}()
	for _, c := range []struct {
		name  string
		start func(*os.File) (*harness.Component, error)
	}{
		{"controller", func(f *os.File) (*harness.Component, error) { return cluster.StartController(bin, f) }},
		{"verifier", func(f *os.File) (*harness.Component, error) { return cluster.StartVerifier(bin, f, verifierAddr) }},
		{"console", func(f *os.File) (*harness.Component, error) { return cluster.StartConsole(bin, f, consoleAddr) }},
	} {
		logPath := filepath.Join(dir, c.name+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			return err
		}
		defer func() { _ = logFile.Close() }()
		fmt.Printf("Starting the %s (log: %s)\n", c.name, logPath)
		p, err := c.start(logFile)
		if err != nil {
			return err
		}
		components, logs = append(components, p), append(logs, logPath)
	}
	logPath := strings.Join(logs, ", ")

	if stopped.Err() != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(stopped, 2*time.Minute)
	defer cancel()
	// A ServiceAccount to sign in to the console with: the console acts
	// with the rights of the token it is given, here those of cluster-admin.
	for _, args := range [][]string{
		{"create", "serviceaccount", "keywarden-console-admin", "-n", "default"},
		{"create", "clusterrolebinding", "keywarden-console-admin", "--clusterrole", "cluster-admin", "--serviceaccount", "default:keywarden-console-admin"},
	} {
		if _, err := cluster.Kubectl(ctx, args...); err != nil {
			return err
		}
	}
	fmt.Println("Applying config/samples")
	if out, err := cluster.Kubectl(ctx, "apply", "-k", "config/samples"); err != nil {
		return err
	} else {
		fmt.Print(out)
	}
	if _, err := cluster.Kubectl(ctx, "wait", "--for=condition=Ready", "apikey", "--all", "-n", "default", "--timeout=60s"); err != nil {
		return fmt.Errorf("%w (logs: %s)", err, logPath)
	}
	out, err := cluster.Kubectl(ctx, "get", "apikeys", "-n", "default")
	if err != nil {
		return err
	}
	fmt.Printf("\n%s\n", out)
	plugin, err := filepath.Abs(filepath.Dir(bin))
	if err != nil {
		return err
	}
	fmt.Printf(`Keywarden is running. To use this cluster:

  export KUBECONFIG=%s
  %s get apikeys -A

The kubectl plugin (bin/kubectl-keywarden), with kubectl on the PATH:

  export PATH=%s:%s:$PATH
  kubectl keywarden list -A

The console, signed in with a token of the ServiceAccount
keywarden-console-admin (cluster-admin, for this local cluster only):

  http://%[6]s
  %[2]s create token keywarden-console-admin -n default

To verify a key:

  key=$(%[2]s get secret grafana-readonly -o jsonpath='{.data.key}' | base64 -d)
  curl -s -X POST http://%[5]s/v1/keys/verify -d "{\"key\":\"$key\",\"namespace\":\"default\"}"

`, cluster.Kubeconfig, cluster.KubectlBin, plugin, filepath.Dir(cluster.KubectlBin), verifierAddr, consoleAddr)
	if exit {
		return nil
	}
	fmt.Println("Press Ctrl-C to stop.")
	exited := make(chan int, len(components))
	for i, c := range components {
		go func() { <-c.Exited(); exited <- i }()
	}
	select {
	case <-stopped.Done():
		fmt.Printf("\nStopping; %s points at this cluster until the next make dev\n", cluster.Kubeconfig)
		return nil
	case i := <-exited:
		return fmt.Errorf("a component exited: %v (log: %s)", components[i].Err(), logs[i])
	}
}

// checkEarlier looks at the kubeconfig an earlier make dev left: if its
// API server still answers, that make dev is running, and a second one
// would fight it for its ports; if not, its cluster is gone, and a shell
// that exported the file gets the new cluster from now on.
func checkEarlier(kubeconfig string) error {
	if _, err := os.Stat(kubeconfig); err != nil {
		return nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil // unreadable: written afresh below
	}
	cfg.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil
	}
	if _, err := cs.Discovery().ServerVersion(); err == nil {
		return fmt.Errorf("another make dev is running: its API server at %s answers (%s); stop it first", cfg.Host, kubeconfig)
	}
	fmt.Printf("%s belonged to a cluster that is gone (%s, of an earlier make dev); it now points at a new one\n", kubeconfig, cfg.Host)
	return nil
}
