package harness

import (
	"context"
	"testing"
)

// A cluster starts again in the directory of an earlier one, as make dev
// does each time it runs.
func TestStartClusterTwiceInOneDirectory(t *testing.T) {
	dir := t.TempDir()
	for run := 1; run <= 2; run++ {
		c, err := StartCluster(dir)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		out, err := c.Kubectl(context.Background(), "get", "namespace", ManagerNamespace, "-o", "name")
		if stopErr := c.Stop(); stopErr != nil {
			t.Errorf("run %d: stopping: %v", run, stopErr)
		}
		if err != nil || out != "namespace/"+ManagerNamespace+"\n" {
			t.Fatalf("run %d: kubectl get namespace: %q, %v", run, out, err)
		}
	}
}
