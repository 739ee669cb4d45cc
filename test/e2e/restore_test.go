//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// restoreFromBackup follows the README's kubectl procedure against the
// running components: the keys of a namespace are exported with their
// status and their Secrets, all of them are deleted (this control plane
// runs no namespace controller, so the objects go one by one), then the
// Secrets and the APIKeys are applied back without what the API server
// set, and each status is written back through the status subresource as
// a cluster admin. Every key verifies again with its old value and none
// is reissued. Beside them, a namespace user's planted variant: an APIKey
// re-created by name, without its status, over a Secret holding a key of
// the user's own, is not adopted and its key is refused.
func restoreFromBackup(e *env) {
	const ns = "restore"
	e.kubectl("create", "namespace", ns)
	e.createKeys(ns, "kept", 3)
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", ns, "--timeout=60s")
	names := []string{"kept-0000", "kept-0001", "kept-0002"}
	raws := map[string]string{}
	hashes := map[string]string{}
	for _, n := range names {
		raws[n] = e.secretKey(ns, n)
		hashes[n] = e.kubectl("get", "apikey", n, "-n", ns, "-o", "jsonpath={.status.keyHash}")
	}
	secrets := e.kubectl("get", "secrets", "-n", ns, "-l", "app.kubernetes.io/managed-by=keywarden", "-o", "json")
	apikeys := e.kubectl("get", "apikeys", "-n", ns, "-o", "json")

	e.kubectl("delete", "apikeys", "--all", "-n", ns, "--wait=true", "--timeout=60s")
	e.eventually("the keys' Secrets are gone", 30*time.Second, func() bool {
		return strings.TrimSpace(e.kubectl("get", "secrets", "-n", ns, "-l", "app.kubernetes.io/managed-by=keywarden", "-o", "name")) == ""
	})
	for _, n := range names {
		if got, err := verify(e.verifiers[0], map[string]any{"key": raws[n], "namespace": ns}); err != nil || got["valid"] != false {
			e.t.Fatalf("%s verifies after its APIKey was deleted: %v %v", n, got, err)
		}
	}

	// The restore, as the README says: Secrets, then APIKeys, then status.
	if _, err := e.kubectlIn(stripForRestore(e, secrets), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	restored := stripForRestore(e, apikeys)
	if _, err := e.kubectlIn(restored, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.kubectlIn(restored, "replace", "--subresource=status", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	for _, n := range names {
		e.eventually(n+" verifies with its old value", 30*time.Second, func() bool {
			for _, m := range e.verifiers {
				got, err := verify(m, map[string]any{"key": raws[n], "namespace": ns})
				if err != nil || got["valid"] != true {
					return false
				}
			}
			return true
		})
		e.eventually(n+"'s Secret is the restored APIKey's", 30*time.Second, func() bool {
			uid := e.kubectl("get", "apikey", n, "-n", ns, "-o", "jsonpath={.metadata.uid}")
			return e.kubectl("get", "secret", n, "-n", ns, "-o", "jsonpath={.metadata.ownerReferences[0].uid}") == uid
		})
		if got := e.kubectl("get", "apikey", n, "-n", ns, "-o", "jsonpath={.status.keyHash}"); got != hashes[n] {
			e.t.Errorf("%s: reissued through the restore (hash %s, was %s)", n, got, hashes[n])
		}
	}
	if reasons := e.kubectl("get", "events", "-n", ns, "-o", "jsonpath={.items[*].reason}"); !strings.Contains(reasons, "SecretAdopted") {
		e.t.Errorf("no SecretAdopted event: %s", reasons)
	}

	// The planted variant: the user deletes one key, and re-creates it by
	// name (no status) over a Secret of the same shape holding their own
	// key.
	victim := names[0]
	e.kubectl("delete", "apikey", victim, "-n", ns, "--wait=true", "--timeout=60s")
	e.eventually("the deleted key's Secret is gone", 30*time.Second, func() bool {
		_, err := e.cluster.Kubectl(context.Background(), "get", "secret", victim, "-n", ns)
		return err != nil && strings.Contains(err.Error(), "NotFound")
	})
	mine := raws[names[1]] // a key the user holds: another key's value
	planted := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","type":"keywarden.dev/api-key",
"metadata":{"name":%q,"namespace":%q,"labels":{"app.kubernetes.io/managed-by":"keywarden","keywarden.dev/apikey":%q}},
"stringData":{"key":%q}}`, victim, ns, victim, mine)
	if _, err := e.kubectlIn(planted, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.kubectlIn(keysManifest(ns, "kept", 1), "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.eventually("the re-created key stalls on the planted Secret", 30*time.Second, func() bool {
		return e.kubectl("get", "apikey", victim, "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="Stalled")].reason}`) == "SecretConflict"
	})
	if h := e.kubectl("get", "apikey", victim, "-n", ns, "-o", "jsonpath={.status.keyHash}"); h != "" {
		e.t.Fatalf("the planted Secret's key was recorded: %s", h)
	}
	if owner := e.kubectl("get", "secret", victim, "-n", ns, "-o", "jsonpath={.metadata.ownerReferences}"); owner != "" {
		e.t.Fatalf("the planted Secret was adopted: %s", owner)
	}
	if got, err := verify(e.verifiers[1], map[string]any{"key": raws[victim], "namespace": ns}); err != nil || got["valid"] != false {
		e.t.Fatalf("the deleted key's old value verifies after a re-create without status: %v %v", got, err)
	}
	if got, err := verify(e.verifiers[1], map[string]any{"key": mine, "namespace": ns}); err != nil || got["name"] != names[1] {
		e.t.Fatalf("the planted value answers as %v %v, want as %s only", got, err, names[1])
	}
	e.note("restore from a backup (kubectl): %d keys exported with status, deleted, applied back and their status replaced: each verifies with its old value, none reissued; an APIKey re-created by name over a planted Secret stays SecretConflict, nothing adopted",
		len(names))
}

// stripForRestore drops from an exported list what the API server set and
// what no longer holds after a restore (uid, resourceVersion,
// creationTimestamp, generation, managedFields, ownerReferences), as the
// README's procedure does.
func stripForRestore(e *env, list string) string {
	e.t.Helper()
	var l struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Items      []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(list), &l); err != nil {
		e.t.Fatal(err)
	}
	for _, item := range l.Items {
		meta, _ := item["metadata"].(map[string]any)
		for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "ownerReferences"} {
			delete(meta, f)
		}
	}
	b, err := json.Marshal(l)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}
