package verify

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// TestFeedStore: what a reflector writes reaches the index, a list
// replaces the keys of its own namespace only, and relisting the same
// keys reports no conflict again.
func TestFeedStore(t *testing.T) {
	ix := NewIndex()
	conflicts := 0
	ix.OnConflict = func(types.NamespacedName, []types.NamespacedName) { conflicts++ }
	var syncedA, syncedAll atomic.Bool
	inA := &feedStore{index: ix, namespace: "a", synced: &syncedA}
	everywhere := &feedStore{index: ix, synced: &syncedAll}
	valid := func(raw string) bool { return ix.Verify(Request{Key: raw, AnyNamespace: true}, t0).Valid }

	rawA1, a1 := issued(t, "a", "one", nil)
	rawA2, a2 := issued(t, "a", "two", nil)
	rawB, b := issued(t, "b", "one", nil)
	if err := inA.Replace([]any{a1, a2}, "1"); err != nil {
		t.Fatal(err)
	}
	if !syncedA.Load() || syncedAll.Load() {
		t.Fatal("a list marks its own store synced, and only that")
	}
	if err := everywhere.Add(b); err != nil {
		t.Fatal(err)
	}
	if !valid(rawA1) || !valid(rawA2) || !valid(rawB) {
		t.Fatal("listed and added keys must verify")
	}

	// A relist of namespace a without two: two goes, b (another
	// namespace) stays.
	if err := inA.Replace([]any{a1}, "2"); err != nil {
		t.Fatal(err)
	}
	if !valid(rawA1) || valid(rawA2) || !valid(rawB) {
		t.Fatalf("after a relist of a: one %v, two %v, b %v; want true, false, true", valid(rawA1), valid(rawA2), valid(rawB))
	}

	// A relist of every namespace forgets what it does not list.
	if err := everywhere.Replace([]any{b}, "3"); err != nil {
		t.Fatal(err)
	}
	if valid(rawA1) || !valid(rawB) || ix.Len() != 1 {
		t.Fatalf("after a relist of all: a/one %v, b %v, %d indexed; want false, true, 1", valid(rawA1), valid(rawB), ix.Len())
	}

	// Deletions, also those the reflector learns of late.
	if err := everywhere.Delete(toolscache.DeletedFinalStateUnknown{Key: "b/one", Obj: b}); err != nil {
		t.Fatal(err)
	}
	if valid(rawB) || ix.Len() != 0 {
		t.Fatal("a deleted key must stop verifying")
	}

	// Two APIKeys recording one hash: reported once, not again at each
	// relist.
	_, twin := issued(t, "b", "twin", nil)
	twin.Status.KeyHash = b.Status.KeyHash
	for range 3 {
		if err := everywhere.Replace([]any{b, twin}, "4"); err != nil {
			t.Fatal(err)
		}
	}
	if conflicts != 1 {
		t.Fatalf("OnConflict called %d times over three relists, want once", conflicts)
	}

	// Anything but an APIKey is refused, and changes nothing.
	if err := everywhere.Update(&keywardenv1alpha1.APIKeyClass{}); err == nil {
		t.Fatal("an APIKeyClass was taken for an APIKey")
	}
	if ix.Len() != 2 {
		t.Fatalf("%d indexed, want 2", ix.Len())
	}
}

// TestStreamedListHoldsRecords: a list streamed from the API server is
// held by the reflector's temporary store as the records the index takes
// (the transform), keyed as the objects are, and the index takes them as
// they are.
func TestStreamedListHoldsRecords(t *testing.T) {
	ix := NewIndex()
	var synced atomic.Bool
	st := &feedStore{index: ix, synced: &synced}
	held := toolscache.NewStore(toolscache.DeletionHandlingMetaNamespaceKeyFunc, toolscache.WithTransformer(st.Transformer()))
	raw, k := issued(t, "shop", "checkout", nil)
	big := *k
	big.Annotations = map[string]string{"padding": strings.Repeat("x", 64<<10)}
	if err := held.Add(&big); err != nil {
		t.Fatal(err)
	}
	items := held.List()
	rec, ok := items[0].(*indexed)
	if !ok || len(items) != 1 {
		t.Fatalf("the temporary store holds %T, want the index's record", items[0])
	}
	if rec.Annotations != nil || rec.Name != "checkout" || len(rec.entries) != 1 {
		t.Fatalf("the record keeps %+v", rec.ObjectMeta)
	}
	if _, exists, _ := held.GetByKey("shop/checkout"); !exists {
		t.Fatal("the record is not keyed as its APIKey")
	}
	if err := st.Replace(items, "1"); err != nil {
		t.Fatal(err)
	}
	if !ix.Verify(Request{Key: raw, AnyNamespace: true}, t0).Valid || !synced.Load() {
		t.Fatal("the key of a streamed list does not verify")
	}
	if err := st.Delete(toolscache.DeletedFinalStateUnknown{Key: "shop/checkout", Obj: rec}); err != nil || ix.Len() != 0 {
		t.Fatalf("a record's tombstone: %v, %d indexed", err, ix.Len())
	}
}

// TestForbiddenNamespace: a namespace the verifier may not read (its
// RoleBinding removed, by whoever may in that namespace) has no valid key,
// and the index of the others stays current: a refusal there does not
// make every replica refuse everyone. Refused the whole cluster, the
// index is stale.
func TestForbiddenNamespace(t *testing.T) {
	now := t0
	fresh := &Freshness{Now: func() time.Time { return now }}
	ix := NewIndex()
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "keywarden.dev", Resource: "apikeys"}, "", errors.New("no RoleBinding"))
	watchOf := func(ns string) (*reportedListWatch, *feedStore, *atomic.Bool) {
		var synced atomic.Bool
		lw := &reportedListWatch{fresh: fresh, lw: &toolscache.ListWatch{
			ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) { return nil, forbidden },
		}}
		st := &feedStore{index: ix, namespace: ns, synced: &synced, fresh: fresh, watch: lw}
		if ns != "" {
			lw.forbidden = st.forbidden
		}
		return lw, st, &synced
	}
	rawA, a := issued(t, "team-a", "k", nil)
	rawB, b := issued(t, "team-b", "k", nil)
	ix.Upsert(a)
	ix.Upsert(b)
	lwA, _, syncedA := watchOf("team-a")
	if _, err := lwA.List(metav1.ListOptions{}); err == nil {
		t.Fatal("the refusal was lost")
	}
	now = now.Add(time.Hour)
	valid := func(raw string) bool { return ix.Verify(Request{Key: raw, AnyNamespace: true}, t0).Valid }
	if valid(rawA) || !valid(rawB) || !syncedA.Load() || fresh.Staleness() != 0 {
		t.Fatalf("team-a refused: its key valid %v, team-b's %v, synced %v, staleness %s; want false, true, true, 0",
			valid(rawA), valid(rawB), syncedA.Load(), fresh.Staleness())
	}
	all, _, _ := watchOf("")
	if _, err := all.List(metav1.ListOptions{}); err == nil {
		t.Fatal("the refusal was lost")
	}
	now = now.Add(time.Minute)
	if got := fresh.Staleness(); got != time.Minute {
		t.Fatalf("refused the whole cluster for a minute: staleness %s", got)
	}
}
