package lifecycle

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// TestRecordHistory: the transitions of a pass go into status.history,
// dated, the other Events not; the last MaxHistory are kept; a message is
// cut within the CRD's bound, as valid UTF-8.
func TestRecordHistory(t *testing.T) {
	o := &Observed{Now: now}
	old := make([]keywardenv1alpha1.HistoryEntry, keywardenv1alpha1.MaxHistory)
	for i := range old {
		old[i] = keywardenv1alpha1.HistoryEntry{At: metav1.NewTime(now.Add(-time.Duration(100-i) * time.Hour)), Event: "KeyRotated", Message: string(rune('a' + i))}
	}
	d := Decision{Status: keywardenv1alpha1.APIKeyStatus{History: old}}
	d.emit("Warning", keywardenv1alpha1.EventKeyExpiringSoon, "Expire", "not a transition")
	d.emit("Normal", keywardenv1alpha1.EventGrantChanged, "Grant", "The key's grant changed: role "+strings.Repeat("é", 600))
	d.emit("Normal", keywardenv1alpha1.EventKeyRevoked, "Revoke", "The key was revoked (KeyReported) and its Secret deleted")
	d.recordHistory(o)

	h := d.Status.History
	if len(h) != keywardenv1alpha1.MaxHistory {
		t.Fatalf("%d entries, want the last %d", len(h), keywardenv1alpha1.MaxHistory)
	}
	if h[0].Message != "c" {
		t.Errorf("the oldest kept is %q, want the third of the old ones", h[0].Message)
	}
	grant, revoked := h[len(h)-2], h[len(h)-1]
	if grant.Event != keywardenv1alpha1.EventGrantChanged || revoked.Event != keywardenv1alpha1.EventKeyRevoked ||
		!revoked.At.Equal(stamp(now)) || !strings.Contains(revoked.Message, "KeyReported") {
		t.Errorf("the pass's transitions: %+v, %+v", grant, revoked)
	}
	if len(grant.Message) > maxHistoryMessage || !strings.HasSuffix(grant.Message, "…") || !utf8Valid(grant.Message) {
		t.Errorf("a long message kept as %d bytes: %q", len(grant.Message), grant.Message[len(grant.Message)-8:])
	}
	if &old[0] == &d.Status.History[0] {
		t.Error("the history shares its array with the status read")
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }
