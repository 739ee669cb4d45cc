package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
)

func TestKeySetFindsLeaks(t *testing.T) {
	raw, err := keys.Generate(keys.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var s keySet
	s.add(raw)
	if got := s.foundIn([]byte(`{"msg":"nothing here"}`)); len(got) != 0 {
		t.Errorf("found %v in clean text", got)
	}
	got := s.foundIn([]byte(`{"msg":"oops ` + raw + `"}`))
	if len(got) != 1 || got[0] != raw[:8]+"..." {
		t.Errorf("foundIn = %v, want the planted key's prefix", got)
	}
}

// newNamespace creates a namespace of its own for one test.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + rand.String(8)}}
	ExpectWithOffset(1, k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// newAPIKey returns a valid APIKey; tests change what they exercise.
func newAPIKey(ns, name string) *keywardenv1alpha1.APIKey {
	return &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: keywardenv1alpha1.APIKeySpec{
			DisplayName: "WordPress purge plugin",
			Owner:       "web-team@example.com",
			Role:        "standard",
			Scopes:      []keywardenv1alpha1.Scope{"cache:purge", "audit-logs:read"},
		},
	}
}

// getKey reads an APIKey through the direct client.
func getKey(ctx context.Context, k *keywardenv1alpha1.APIKey) *keywardenv1alpha1.APIKey {
	out := &keywardenv1alpha1.APIKey{}
	ExpectWithOffset(1, k8sClient.Get(ctx, client.ObjectKeyFromObject(k), out)).To(Succeed())
	return out
}

// condition returns the key's condition of that type, or an empty one.
func condition(k *keywardenv1alpha1.APIKey, typ string) metav1.Condition {
	if c := apimeta.FindStatusCondition(k.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// waitReady waits until the key is Ready and Active, and returns it.
func waitReady(ctx context.Context, k *keywardenv1alpha1.APIKey) *keywardenv1alpha1.APIKey {
	var got *keywardenv1alpha1.APIKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = &keywardenv1alpha1.APIKey{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), got)).To(Succeed())
		g.Expect(condition(got, keywardenv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return got
}

// waitReissued waits until the key, as issued, holds another key and is
// Ready again, and returns it.
func waitReissued(ctx context.Context, issued *keywardenv1alpha1.APIKey) *keywardenv1alpha1.APIKey {
	var got *keywardenv1alpha1.APIKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = getKey(ctx, issued)
		g.Expect(got.Status.KeyHash).NotTo(BeEmpty())
		g.Expect(got.Status.KeyHash).NotTo(Equal(issued.Status.KeyHash))
		g.Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseActive))
		g.Expect(condition(got, keywardenv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return got
}

// waitPhase waits until the key reaches the phase, and returns it.
func waitPhase(ctx context.Context, k *keywardenv1alpha1.APIKey, phase keywardenv1alpha1.APIKeyPhase, timeout time.Duration) *keywardenv1alpha1.APIKey {
	var got *keywardenv1alpha1.APIKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = &keywardenv1alpha1.APIKey{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(k), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(phase))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	return got
}

// waitStalled waits until the key is Stalled for the reason, and returns it.
func waitStalled(ctx context.Context, k *keywardenv1alpha1.APIKey, reason string) *keywardenv1alpha1.APIKey {
	var got *keywardenv1alpha1.APIKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = getKey(ctx, k)
		g.Expect(condition(got, "Stalled")).To(And(
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", reason)))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return got
}

// waitRefused waits until the key is Refused for its owner's limit: not
// stalled (no person is needed), but reconciling until a place frees.
func waitRefused(ctx context.Context, k *keywardenv1alpha1.APIKey) *keywardenv1alpha1.APIKey {
	var got *keywardenv1alpha1.APIKey
	EventuallyWithOffset(1, func(g Gomega) {
		got = getKey(ctx, k)
		g.Expect(got.Status.Phase).To(Equal(keywardenv1alpha1.PhaseRefused))
		g.Expect(condition(got, "Reconciling")).To(And(
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", keywardenv1alpha1.ReasonActiveKeyLimit)))
		g.Expect(condition(got, "Stalled").Status).To(BeEmpty())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return got
}

// readSecret reads a Secret through the direct client and records the raw
// key it holds for the leak check.
func readSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		return nil, err
	}
	if raw := string(s.Data[keywardenv1alpha1.SecretKeyField]); raw != "" {
		rawKeys.add(raw)
	}
	return s, nil
}

// eventReasons lists the reasons of the events.k8s.io Events about an object.
func eventReasons(ctx context.Context, obj client.Object) func() ([]string, error) {
	return func() ([]string, error) {
		var list eventsv1.EventList
		if err := k8sClient.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil, err
		}
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.UID == obj.GetUID() {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons, nil
	}
}

// secretGone reports whether the Secret no longer exists.
func secretGone(ctx context.Context, ns, name string) func() error {
	return func() error {
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &corev1.Secret{})
		if err == nil {
			return fmt.Errorf("secret %s/%s still exists", ns, name)
		}
		return client.IgnoreNotFound(err)
	}
}
