//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/test/harness"
)

// service stands in for the keywarden-verifier Service: the endpoints it
// routes to are the ready pods with a port named verifier, which a
// terminating pod leaves before it stops. Requests go to each in turn.
type service struct {
	mu        sync.Mutex
	endpoints []*harness.Component
	next      int
}

func (s *service) add(m *harness.Component) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = append(s.endpoints, m)
}

func (s *service) remove(m *harness.Component) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = slices.DeleteFunc(s.endpoints, func(o *harness.Component) bool { return o == m })
}

func (s *service) pick() *harness.Component {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.endpoints[s.next%len(s.endpoints)]
}

// upgradeFromOneProcess: an install of the release before the split (its
// manager binary, built from this repository's history by
// hack/previous.sh, running everything in two replicas under its
// config/rbac) holds active keys, a key rotating and a key refused for its
// owner's limit, while clients verify through the verifier's Service.
// Then the manifests change over as `kubectl apply` of this release does:
// its config/rbac is applied, its controllers stand for the lease (and
// write the serving pair of the certificate the old replicas issued for
// its verifiers), its verifiers join the Service once ready, and the old
// replicas leave one by one, as a rolling update replaces pods. A rotation is asked for while
// both run and another once only the new ones do, and the refused key's
// place is freed. No verification fails, no key is reissued (the same hash
// and Secret for each), every rotation completes, and the refused key is
// issued by the new controller.
func upgradeFromOneProcess(e *env) {
	prev := os.Getenv("PREVIOUS_RELEASE_DIR")
	if prev == "" {
		e.t.Fatal("PREVIOUS_RELEASE_DIR is not set: run make test-e2e (hack/previous.sh builds it)")
	}
	for _, m := range append(e.controllers, e.verifiers...) {
		m.Stop(10 * time.Second)
	}
	e.controllers, e.verifiers = nil, nil
	ctx := context.Background()
	const ns = "upgrade"

	// The earlier release, as it was installed.
	e.kubectl("apply", "-k", filepath.Join(prev, "src", "config", "rbac"))
	var old []*harness.Component
	for i := range 2 {
		addrs := make([]string, 3)
		for j := range addrs {
			p, err := harness.FreePort()
			if err != nil {
				e.t.Fatal(err)
			}
			addrs[j] = "127.0.0.1:" + strconv.Itoa(p)
		}
		m, err := harness.StartBinary(filepath.Join(prev, "manager"), e.logFile("previous-manager"), []string{
			"--kubeconfig", e.managerKubeconfig, "--metrics-bind-address", addrs[0], "--metrics-secure=false",
			"--health-probe-bind-address", addrs[1], "--verifier-bind-address", addrs[2],
			"--leader-elect", "--leader-election-namespace", harness.ManagerNamespace,
			"--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms",
			"--verifier-certs=self", "--verifier-cert-dir", filepath.Join(e.dir, fmt.Sprintf("previous-certs-%d", i)),
		}, "https://"+addrs[2], "http://"+addrs[0], "")
		if err != nil {
			e.t.Fatal(err)
		}
		defer m.Stop(10 * time.Second)
		old = append(old, m)
	}
	e.trustVerifierCA()
	svc := &service{}
	for _, m := range old {
		e.eventually("a manager of the earlier release is ready", 60*time.Second, func() bool {
			code, _ := status(m.URL + "/readyz")
			return code == 200
		})
		svc.add(m)
	}
	e.kubectl("create", "namespace", ns)
	manifest := `apiVersion: keywarden.dev/v1alpha1
kind: APIKeyClass
metadata: {name: upgrade-one-each}
spec: {maxActiveKeysPerOwner: 1}
`
	for i := range 4 {
		manifest += fmt.Sprintf("---\napiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata: {name: steady-%d, namespace: %s}\nspec: {displayName: Steady %d, owner: steady-%d@example.com, role: reader}\n", i, ns, i, i)
	}
	rotating := "---\napiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata: {name: rotating, namespace: " + ns + "}\nspec: {displayName: Rotating, owner: rotating@example.com, role: reader, rotation: {gracePeriod: 1h, request: %q}}\n"
	manifest += fmt.Sprintf(rotating, "r0")
	manifest += "---\napiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata: {name: holder, namespace: " + ns + "}\nspec: {displayName: Holder, owner: shared@example.com, role: reader, className: upgrade-one-each}\n"
	if _, err := e.kubectlIn(manifest, "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("wait", "--for=condition=Ready", "apikey", "--all", "-n", ns, "--timeout=60s")
	if _, err := e.kubectlIn("apiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata: {name: waiting, namespace: "+ns+"}\nspec: {displayName: Waiting, owner: shared@example.com, role: reader, className: upgrade-one-each}\n", "apply", "-f", "-"); err != nil {
		e.t.Fatal(err)
	}
	e.kubectl("wait", "--for=jsonpath={.status.phase}=Refused", "apikey/waiting", "-n", ns, "--timeout=60s")

	c, err := client.New(e.cluster.Config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		e.t.Fatal(err)
	}
	type issued struct{ hash, secretUID string }
	record := func() map[string]issued {
		var list keywardenv1alpha1.APIKeyList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			e.t.Fatal(err)
		}
		out := map[string]issued{}
		for _, k := range list.Items {
			if k.Status.SecretRef != nil {
				out[k.Name] = issued{k.Status.KeyHash, k.Status.SecretRef.UID}
			}
		}
		return out
	}
	before := record()
	var (
		mu       sync.Mutex
		held     []string
		checks   atomic.Int64
		failures []string
	)
	hold := func(raw string) {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(held, raw) {
			held = append(held, raw)
		}
	}
	for _, name := range []string{"steady-0", "steady-1", "steady-2", "steady-3", "rotating", "holder"} {
		hold(e.secretKey(ns, name))
	}
	holderKey := e.secretKey(ns, "holder")
	stop := make(chan struct{})
	var clients sync.WaitGroup
	for range 2 {
		clients.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				keys := slices.Clone(held)
				mu.Unlock()
				for _, raw := range keys {
					m := svc.pick()
					got, err := verify(m, map[string]any{"key": raw, "namespace": ns})
					checks.Add(1)
					if err != nil || got["valid"] != true {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s at %s: %v %v", raw[:8], m.URL, got["code"], err))
						mu.Unlock()
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	rotate := func(request string) {
		e.t.Helper()
		if _, err := e.kubectlIn(fmt.Sprintf("apiVersion: keywarden.dev/v1alpha1\nkind: APIKey\nmetadata: {name: rotating, namespace: "+ns+"}\nspec: {displayName: Rotating, owner: rotating@example.com, role: reader, rotation: {gracePeriod: 1h, request: %q}}\n", request), "apply", "-f", "-"); err != nil {
			e.t.Fatal(err)
		}
		e.eventually("the key rotates ("+request+")", 60*time.Second, func() bool {
			return e.kubectl("get", "apikey", "rotating", "-n", ns, "-o", "jsonpath={.status.rotation.request}") == request &&
				e.kubectl("get", "apikey", "rotating", "-n", ns, "-o", "jsonpath={.status.rotation.next}") == ""
		})
		hold(e.secretKey(ns, "rotating"))
	}

	// This release's manifests: RBAC first (kubectl apply orders by
	// kind), then its Deployments.
	e.kubectl("apply", "-k", "config/rbac")
	// A pod that starts before the API server enforces this release's
	// policies is restarted by its Deployment; a process here is not: wait.
	mc, err := clientcmd.BuildConfigFromFlags("", e.managerKubeconfig)
	if err != nil {
		e.t.Fatal(err)
	}
	manager, err := kubernetes.NewForConfig(mc)
	if err != nil {
		e.t.Fatal(err)
	}
	e.eventually("this release's admission policies are in force", 30*time.Second, func() bool {
		_, err := manager.CoreV1().Secrets(harness.ManagerNamespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "keywarden-verifier-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: nil, corev1.TLSPrivateKeyKey: nil}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil || apierrors.IsAlreadyExists(err)
	})
	for range 2 {
		e.startController()
	}
	for range 2 {
		v := e.startVerifier()
		svc.add(v)
	}
	rotate("r1") // the earlier release's leader, or a new controller, rotates it
	for _, m := range old {
		svc.remove(m)
		m.Stop(10 * time.Second)
		time.Sleep(2 * time.Second)
	}
	if l := e.leader(); !slices.Contains(e.controllers, l) {
		e.t.Fatal("no controller of this release leads")
	}
	rotate("r2")
	// The holder's key is given up (its clients stop using it) before it
	// is deleted, which frees its owner's place.
	mu.Lock()
	held = slices.DeleteFunc(held, func(raw string) bool { return raw == holderKey })
	mu.Unlock()
	time.Sleep(time.Second)
	e.kubectl("delete", "apikey", "holder", "-n", ns)
	e.kubectl("wait", "--for=condition=Ready", "apikey/waiting", "-n", ns, "--timeout=60s")
	hold(e.secretKey(ns, "waiting"))
	time.Sleep(time.Second)
	close(stop)
	clients.Wait()

	if len(failures) > 0 {
		e.t.Fatalf("%d of %d verifications through the change failed, the first: %s; the last: %s", len(failures), checks.Load(), failures[0], failures[len(failures)-1])
	}
	after := record()
	for name, was := range before {
		now, ok := after[name]
		switch {
		case name == "holder":
		case !ok:
			e.t.Errorf("%s: no longer issued", name)
		case now.secretUID != was.secretUID:
			e.t.Errorf("%s: its Secret was replaced", name)
		case name == "rotating":
			var k keywardenv1alpha1.APIKey
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &k); err != nil {
				e.t.Fatal(err)
			}
			if which, _ := k.Status.Holds(was.hash); which != keywardenv1alpha1.HoldsPrevious || len(k.Status.Rotation.Previous) != 2 {
				e.t.Errorf("rotating: its first key is %v, with %d keys rotated out; want it rotated out, one of two", which, len(k.Status.Rotation.Previous))
			}
		case now.hash != was.hash:
			e.t.Errorf("%s: reissued (its key hash changed)", name)
		}
	}
	e.note("upgrade from one process: 2 managers of the release before the split replaced by 2 controllers and 2 verifiers under their own accounts; %d verifications through the change, 0 failed; no key reissued, 2 rotations across it, the refused key issued by the new controller",
		checks.Load())
	if strings.Contains(e.kubectl("get", "apikeys", "-n", ns, "-o", "jsonpath={.items[*].status.phase}"), "Pending") {
		e.t.Error("a key is left Pending")
	}
}
