package verifier

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/pkg/verify"
)

// TestTrimForVerifier: what a namespace editor writes freely is dropped,
// and the key verifies from the trimmed object exactly as from the whole.
func TestTrimForVerifier(t *testing.T) {
	raw, err := keys.Generate(keys.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 200<<10)
	expires := metav1.NewTime(time.Now().Add(time.Hour).Truncate(time.Second))
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders", UID: "u", ResourceVersion: "7",
			Labels: map[string]string{"team": "shop"}, Annotations: map[string]string{"padding": big},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}, Finalizers: []string{"keywarden.dev/secret-cleanup"}},
		Spec: keywardenv1alpha1.APIKeySpec{DisplayName: "Orders", Description: strings.Repeat("d", 500), Owner: "shop@example.com", Role: "reader",
			Scopes: []keywardenv1alpha1.Scope{"orders:read"}, TrackLastUsed: true,
			SecretTemplate: &keywardenv1alpha1.SecretTemplate{Annotations: map[string]string{"note": strings.Repeat("n", 4096)}}},
		Status: keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseActive, KeyHash: keys.Hash(raw), KeyPrefix: raw[:8],
			Owner: "shop@example.com", Role: "reader", Scopes: []keywardenv1alpha1.Scope{"orders:read"}, ExpiresAt: &expires, ClassName: "shop",
			Conditions: []metav1.Condition{
				{Type: keywardenv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "KeyIssued", Message: strings.Repeat("m", 1000)},
				{Type: keywardenv1alpha1.ConditionClassCompliant, Status: metav1.ConditionFalse, Reason: "NamespaceNotAllowed", Message: strings.Repeat("m", 1000)},
			}},
	}
	whole := k.DeepCopy()
	out, err := TrimForVerifier(k)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*keywardenv1alpha1.APIKey)
	if got.Labels != nil || got.Annotations != nil || got.ManagedFields != nil || got.Spec.SecretTemplate != nil ||
		got.Spec.Description != "" || got.Spec.DisplayName != "" || len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Message != "" {
		t.Errorf("kept free text: %+v", got)
	}
	// With the grant recorded, nothing of what the spec asks for is held
	// (up to 64 scopes of 128 characters).
	if got.Spec.Owner != "" || got.Spec.Role != "" || got.Spec.Scopes != nil || got.Status.SecretRef != nil {
		t.Errorf("kept the spec's grant of a key whose grant is recorded: %+v", got.Spec)
	}
	// A key of a release that recorded no grant keeps the spec's.
	legacy := whole.DeepCopy()
	legacy.Status.Owner, legacy.Status.Role, legacy.Status.Scopes, legacy.Status.ExpiresAt = "", "", nil, nil
	legacyOut, err := TrimForVerifier(legacy.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	check(t, raw, legacy, legacyOut.(*keywardenv1alpha1.APIKey))
	check(t, raw, whole, got)
	// Not an APIKey: left as it is.
	if out, err := TrimForVerifier("x"); err != nil || out != "x" {
		t.Errorf("a value that is not an object: %v %v", out, err)
	}
}

// check: a trimmed key answers as the whole one.
func check(t *testing.T, raw string, whole, got *keywardenv1alpha1.APIKey) {
	t.Helper()
	for _, req := range []verify.Request{
		{Key: raw, Namespaces: []string{"shop"}},
		{Key: raw, Namespaces: []string{"shop"}, Scopes: []string{"orders:read"}},
		{Key: raw, Namespaces: []string{"shop"}, Scopes: []string{"orders:write"}},
		{Key: raw, Namespaces: []string{"shop"}, Role: "admin"},
		{Key: raw, Classes: []string{"shop"}, AnyNamespace: true},
		{Key: raw, Namespaces: []string{"billing"}},
	} {
		a, b := verify.NewIndex(), verify.NewIndex()
		a.Upsert(whole)
		b.Upsert(got)
		now := time.Now()
		if wa, wb := a.Verify(req, now), b.Verify(req, now); !reflect.DeepEqual(wa, wb) {
			t.Errorf("%+v: whole %+v, trimmed %+v", req, wa, wb)
		}
	}
}
