// Command dev runs Keywarden against a local control plane: it starts etcd
// and kube-apiserver, installs the CRDs, runs the manager binary, applies
// config/samples and shows the keys, then keeps everything running until it
// is interrupted. `make dev` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"keywarden.dev/keywarden/test/harness"
)

func main() {
	manager := flag.String("manager", "bin/manager", "The manager binary to run.")
	exit := flag.Bool("exit", false, "Stop once the samples are Ready instead of running until interrupted.")
	flag.Parse()
	if err := run(*manager, *exit); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

// verifierAddr is where `make dev` serves the verifier.
const verifierAddr = "127.0.0.1:8090"

// consoleAddr is where `make dev` serves the console.
const consoleAddr = "127.0.0.1:8095"

func run(manager string, exit bool) error {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "bin", "dev")
	fmt.Println("Starting etcd and kube-apiserver")
	cluster, err := harness.StartCluster(dir)
	if err != nil {
		return err
	}
	defer func() { _ = cluster.Stop() }()

	logPath := filepath.Join(dir, "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	fmt.Printf("Starting the manager (log: %s)\n", logPath)
	mgr, err := cluster.StartManager(manager, logFile, verifierAddr, "--console-bind-address", consoleAddr)
	if err != nil {
		return err
	}
	defer mgr.Stop(10 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
		return fmt.Errorf("%w (manager log: %s)", err, logPath)
	}
	out, err := cluster.Kubectl(ctx, "get", "apikeys", "-n", "default")
	if err != nil {
		return err
	}
	fmt.Printf("\n%s\n", out)
	plugin, err := filepath.Abs(filepath.Dir(manager))
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
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
		fmt.Println("\nStopping")
		return nil
	case <-mgr.Exited():
		return fmt.Errorf("the manager exited: %v (log: %s)", mgr.Err(), logPath)
	}
}
