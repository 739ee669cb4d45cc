//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// rotation: a key rotates twice on request, from kubectl, while a
// workload-like client reads its Secret as a mounted volume would be
// refreshed and verifies the key it read, and every key it held before,
// against both verifiers: no verification of a current or in-grace key may
// fail. Each rotation keeps the Secret (same object, new value). A third
// rotation with no grace period leaves the replaced key ROTATED. The
// controllers write the Secrets in place with their own ServiceAccount,
// under the admission policy.
func rotation(e *env) {
	ctx := context.Background()
	e.kubectl("create", "namespace", "rotation")
	manifest := `apiVersion: keywarden.dev/v1alpha1
kind: APIKey
metadata:
  name: billing
  namespace: rotation
spec:
  displayName: Billing exporter
  owner: billing@example.com
  role: reader
  rotation:
    gracePeriod: 1h
    request: "%s"
`
	apply := func(request string) {
		e.t.Helper()
		if _, err := e.kubectlIn(fmt.Sprintf(manifest, request), "apply", "-f", "-"); err != nil {
			e.t.Fatal(err)
		}
	}
	apply("v1")
	e.kubectl("wait", "--for=condition=Ready", "apikey/billing", "-n", "rotation", "--timeout=60s")
	before, err := e.kube.CoreV1().Secrets("rotation").Get(ctx, "billing", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		held     []string // every key the workload read, oldest first
		checks   atomic.Int64
		failures []string
		stop     = make(chan struct{})
		done     = make(chan struct{})
	)
	check := func(raw string, round int) {
		m := e.verifiers[round%len(e.verifiers)]
		got, err := verify(m, map[string]any{"key": raw, "namespace": "rotation"})
		checks.Add(1)
		if err != nil || got["valid"] != true {
			mu.Lock()
			failures = append(failures, fmt.Sprintf("%v %v", got["code"], err))
			mu.Unlock()
		}
	}
	go func() {
		defer close(done)
		for round := 0; ; round++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s, err := e.kube.CoreV1().Secrets("rotation").Get(ctx, "billing", metav1.GetOptions{})
			if err != nil {
				mu.Lock()
				failures = append(failures, "reading the Secret: "+err.Error())
				mu.Unlock()
				continue
			}
			raw := string(s.Data["key"])
			mu.Lock()
			if len(held) == 0 || held[len(held)-1] != raw {
				held = append(held, raw)
				e.remember(raw)
			}
			keys := append([]string(nil), held...)
			mu.Unlock()
			for _, k := range keys {
				check(k, round)
			}
		}
	}()

	heldKeys := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(held)
	}
	for i, request := range []string{"v2", "v3"} {
		apply(request)
		e.eventually(fmt.Sprintf("rotation %d reaches the workload", i+1), 30*time.Second, func() bool { return heldKeys() == i+2 })
	}
	// The same manifest applied again rotates nothing.
	apply("v3")
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	if len(failures) > 0 {
		e.t.Fatalf("%d of %d verifications failed during two rotations: %v", len(failures), checks.Load(), failures)
	}
	if n := heldKeys(); n != 3 {
		e.t.Fatalf("the workload read %d keys, want 3: the same request applied again rotated the key", n)
	}
	after, err := e.kube.CoreV1().Secrets("rotation").Get(ctx, "billing", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if after.UID != before.UID {
		e.t.Fatalf("the Secret was replaced (UID %s, then %s), not written in place", before.UID, after.UID)
	}
	got, err := verify(e.verifiers[0], map[string]any{"key": held[0], "namespace": "rotation"})
	if err != nil || got["valid"] != true || got["previous"] != true || got["validUntil"] == nil {
		e.t.Fatalf("the first key after two rotations: %v %v, want valid, previous, with validUntil", got, err)
	}

	// No grace: the key replaced is refused at once, with its own code.
	e.kubectl("patch", "apikey", "billing", "-n", "rotation", "--type=merge", "-p", `{"spec":{"rotation":{"gracePeriod":"0s","request":"v4"}}}`)
	e.eventually("a rotation without grace leaves the replaced key ROTATED", 30*time.Second, func() bool {
		got, err := verify(e.verifiers[1], map[string]any{"key": held[2], "namespace": "rotation"})
		return err == nil && got["code"] == "ROTATED"
	})
	current := e.secretKey("rotation", "billing")

	// A leak reported to one replica revokes the key on the other within a
	// second, the manifest unchanged.
	resp, err := http1.Post(e.verifiers[0].URL+"/v1/keys/report", "application/json", strings.NewReader(`{"key":"`+current+`"}`))
	if err != nil {
		e.t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		e.t.Fatalf("report: %d", resp.StatusCode)
	}
	start := time.Now()
	e.eventually("the reported key is revoked on the other replica", time.Second, func() bool {
		got, err := verify(e.verifiers[1], map[string]any{"key": current, "namespace": "rotation"})
		return err == nil && got["code"] == "REVOKED"
	})
	revokedAfter := time.Since(start)
	e.kubectl("wait", "--for=jsonpath={.status.phase}=Revoked", "apikey/billing", "-n", "rotation", "--timeout=30s")
	apply("v4") // the manifest as in Git: revoked: false
	if got, err := verify(e.verifiers[0], map[string]any{"key": current, "namespace": "rotation"}); err != nil || got["code"] != "REVOKED" {
		e.t.Fatalf("the reported key after the manifest was applied again: %v %v", got, err)
	}
	e.note("rotation: two rotations on request from kubectl, the Secret written in place; %d verifications of current and in-grace keys by a workload reading the Secret, none failed; the same manifest applied again rotated nothing; without grace the replaced key is ROTATED; the key reported as leaked to one replica was REVOKED on the other in %s, and stayed so with its manifest applied again",
		checks.Load(), revokedAfter)
}
