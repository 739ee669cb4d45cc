package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestGrantedFacts(t *testing.T) {
	spec := APIKeySpec{Owner: "declared@example.com", Role: "admin", ClassName: "declared", SecretName: "declared-secret"}
	tests := []struct {
		name                       string
		status                     APIKeyStatus
		owner, role, class, secret string
	}{
		{"not issued", APIKeyStatus{}, "declared@example.com", "admin", "declared", "declared-secret"},
		{"issued with a grant", APIKeyStatus{Owner: "granted@example.com", Role: "readonly", ClassName: "granted", SecretRef: &SecretReference{Name: "recorded"}},
			"granted@example.com", "readonly", "granted", "recorded"},
		// A grant with an owner and no role grants no role: the spec's
		// role is not taken for it.
		{"a grant of no role", APIKeyStatus{Owner: "written@example.com"}, "written@example.com", "", "declared", "declared-secret"},
		// A role without an owner is no grant (no release writes one):
		// the spec counts until the controller records one.
		{"a role without a grant", APIKeyStatus{Role: "readonly"}, "declared@example.com", "admin", "declared", "declared-secret"},
		{"a recorded Secret without a name", APIKeyStatus{SecretRef: &SecretReference{UID: "u"}}, "declared@example.com", "admin", "declared", "declared-secret"},
	}
	for _, tt := range tests {
		k := &APIKey{ObjectMeta: metav1.ObjectMeta{Name: "key"}, Spec: spec, Status: tt.status}
		if got := k.GrantedOwner(); got != tt.owner {
			t.Errorf("%s: owner %q, want %q", tt.name, got, tt.owner)
		}
		if got := k.GrantedRole(); got != tt.role {
			t.Errorf("%s: role %q, want %q", tt.name, got, tt.role)
		}
		if got := k.GrantedClass(); got != tt.class {
			t.Errorf("%s: class %q, want %q", tt.name, got, tt.class)
		}
		if got, want := k.Ungranted(), tt.role == ""; got != want {
			t.Errorf("%s: Ungranted %v, want %v", tt.name, got, want)
		}
		if got := k.SecretName(); got != tt.secret {
			t.Errorf("%s: Secret %q, want %q", tt.name, got, tt.secret)
		}
	}
	if got := (&APIKey{ObjectMeta: metav1.ObjectMeta{Name: "key"}}).SecretName(); got != "key" {
		t.Errorf("no secretName: %q, want the APIKey's name", got)
	}
}

func TestHolds(t *testing.T) {
	st := &APIKeyStatus{KeyHash: "sha256:current", Rotation: &RotationStatus{
		Next:     &RecordedKey{KeyHash: "sha256:next"},
		Previous: []PreviousKey{{RecordedKey: RecordedKey{KeyHash: "sha256:old"}}, {RecordedKey: RecordedKey{KeyHash: "sha256:older"}}},
	}}
	for hash, want := range map[string]Generation{
		"sha256:current": HoldsCurrent, "sha256:next": HoldsNext, "sha256:old": HoldsPrevious, "sha256:older": HoldsPrevious,
		"sha256:other": HoldsNone, "": HoldsNone,
	} {
		got, p := st.Holds(hash)
		if got != want || (want == HoldsPrevious) != (p != nil) || p != nil && p.KeyHash != hash {
			t.Errorf("Holds(%q) = %v, %v; want %v", hash, got, p, want)
		}
	}
	if got, _ := (&APIKeyStatus{}).Holds(""); got != HoldsNone {
		t.Errorf("an empty status holds the empty hash: %v", got)
	}
}
