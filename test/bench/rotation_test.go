//go:build bench

package bench

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/controllers"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/seal"
)

// rotationRequest is what the benchmark sets spec.rotation.request to.
const rotationRequest = "bench"

// rotation asks BENCH_ROTATE_KEYS issued keys to rotate at once (a new
// spec.rotation.request on each, from as many clients as issuance uses) and
// measures keys per second until all are rotated, against the same API
// server doing a rotation's minimum writes with a plain client (the
// request, the next key in status, the Secret, the completed status), with
// as many writers as the controller has workers. The two alternate for
// BENCH_ROUNDS rounds, each in a namespace of its own.
func rotation(e *env) {
	n := envInt("BENCH_ROTATE_KEYS", 1000)
	rounds := envInt("BENCH_ROUNDS", 2)
	workers := controllers.DefaultMaxConcurrentReconciles

	ctrlRate, baseRate := alternate(n, rounds,
		func(r int) (time.Duration, string) {
			return e.rotateWithController(fmt.Sprintf("rotate-controller-%d", r), n, 2*n*r)
		},
		func(r int) time.Duration {
			return e.rotateWithPlainClient(fmt.Sprintf("rotate-baseline-%d", r), n, workers)
		})
	report("%d issued keys asked to rotate at once by %d clients, %d rounds", n, creators, rounds)
	report("controller (%d workers): %.0f keys/s until all rotated", workers, ctrlRate)
	report("baseline (plain client, %d writers, 4 writes a key): %.0f keys/s", workers, baseRate)
	ratio("rotation throughput vs baseline", ctrlRate/baseRate, ">= 0.80")
}

func rotated(k *keywardenv1alpha1.APIKey) bool {
	r := k.Status.Rotation
	return r != nil && r.Request == rotationRequest && r.Next == nil && r.LastRotatedAt != nil && len(r.Previous) == 1
}

// requestRotation sets the key's spec.rotation.request, as a CI job or a
// commit in Git would.
func (e *env) requestRotation(ns string, i int) error {
	patch := []byte(`{"spec":{"rotation":{"request":"` + rotationRequest + `"}}}`)
	k := &keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: newKey(ns, i).Name}}
	return e.c.Patch(e.ctx, k, client.RawPatch(types.MergePatchType, patch))
}

// rotateWithController prefills n issued keys in a new namespace, starts
// the manager, waits until it has gone through every existing key, asks
// all n to rotate and returns the time until all are rotated, with the
// manager's requests and CPU per key.
func (e *env) rotateWithController(ns string, n, existing int) (time.Duration, string) {
	e.namespace(ns)
	e.prefill(ns, 0, n, creators)
	m := e.startManager()
	defer m.Stop(10 * time.Second)
	e.waitIdle(m.Controller, existing+n)
	w := e.watchKeys(ns, n, rotated)
	return e.timeWithManager(m, w, n, "rotated", func(i int) error { return e.requestRotation(ns, i) })
}

// rotateWithPlainClient prefills n issued keys in a new namespace, with the
// manager stopped, asks all n to rotate and does each rotation's minimum
// writes with the given number of writers; it returns the time until a
// watch shows all rotated.
func (e *env) rotateWithPlainClient(ns string, n, workers int) time.Duration {
	e.namespace(ns)
	e.prefill(ns, 0, n, creators)
	w := e.watchKeys(ns, n, rotated)
	return timeWithWriters(e, w, n, workers, "rotated", func(i int) (int, error) { return i, e.requestRotation(ns, i) },
		func(i int) error { return e.writeRotated(ns, i) })
}

// writeRotated does, with a plain client, the minimum writes of a
// rotation of an issued key: the next key in status, the new value in the
// Secret, the completed status. The objects it leaves are those the
// controller leaves.
func (e *env) writeRotated(ns string, i int) error {
	k := &keywardenv1alpha1.APIKey{}
	if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: ns, Name: newKey(ns, i).Name}, k); err != nil {
		return err
	}
	raw, err := keys.Generate(keys.DefaultPrefix)
	if err != nil {
		return err
	}
	next := &keywardenv1alpha1.RecordedKey{KeyHash: keys.Hash(raw), KeyPrefix: keys.DisplayPrefix(raw)}
	base := k.DeepCopy()
	k.Status.Rotation = &keywardenv1alpha1.RotationStatus{Request: rotationRequest, Next: next}
	if err := e.c.Status().Patch(e.ctx, k, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("recording the next key: %w", err)
	}
	s := &corev1.Secret{}
	if err := e.c.Get(e.ctx, types.NamespacedName{Namespace: ns, Name: k.Status.SecretRef.Name}, s); err != nil {
		return err
	}
	s.Data = map[string][]byte{keywardenv1alpha1.SecretKeyField: []byte(raw)}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[seal.Annotation] = "bench"
	if err := e.c.Update(e.ctx, s); err != nil {
		return fmt.Errorf("writing the Secret: %s", strings.ReplaceAll(err.Error(), raw, "[redacted]"))
	}
	base = k.DeepCopy()
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	st := &k.Status
	st.Rotation.Previous = []keywardenv1alpha1.PreviousKey{{
		RecordedKey: keywardenv1alpha1.RecordedKey{KeyHash: st.KeyHash, KeyPrefix: st.KeyPrefix},
		RotatedAt:   now, ValidUntil: metav1.NewTime(now.Add(keywardenv1alpha1.DefaultGracePeriod)),
	}}
	st.KeyHash, st.KeyPrefix = next.KeyHash, next.KeyPrefix
	st.SecretRef.ResourceVersion = s.ResourceVersion
	st.Rotation.Next, st.Rotation.LastRotatedAt = nil, &now
	if err := e.c.Status().Patch(e.ctx, k, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("completing the rotation: %w", err)
	}
	return nil
}
