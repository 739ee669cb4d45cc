package verify

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// issued returns a raw key and an Active APIKey that holds it, with its
// grant recorded in status as the controller records it; mutate changes
// what a test exercises.
func issued(t testing.TB, ns, name string, mutate func(*keywardenv1alpha1.APIKey)) (string, *keywardenv1alpha1.APIKey) {
	t.Helper()
	raw, err := keys.Generate(keys.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: keywardenv1alpha1.APIKeySpec{
			DisplayName: "d", Owner: "team@example.com", Role: "readonly",
			Scopes: []keywardenv1alpha1.Scope{"logs:read", "audit:read"},
		},
		Status: keywardenv1alpha1.APIKeyStatus{
			Phase: keywardenv1alpha1.PhaseActive, KeyHash: keys.Hash(raw), KeyPrefix: keys.DisplayPrefix(raw),
			IssuedAt: &metav1.Time{Time: t0},
			Owner:    "team@example.com", Role: "readonly",
			Scopes: []keywardenv1alpha1.Scope{"logs:read", "audit:read"},
		},
	}
	if mutate != nil {
		mutate(k)
	}
	return raw, k
}

func TestVerify(t *testing.T) {
	inAnHour := &metav1.Time{Time: t0.Add(time.Hour)}
	tests := []struct {
		name    string
		mutate  func(*keywardenv1alpha1.APIKey)
		present func(raw string) string
		req     Request
		// untrusted keeps a request that names no namespace and no class
		// as it is; others are given the key's namespace.
		untrusted bool
		now       time.Time
		want      Code
	}{
		{name: "valid", now: t0},
		{name: "valid with every requirement met", req: Request{Scopes: []string{"audit:read", "logs:read"}, Role: "readonly", Namespaces: []string{"ns"}}, now: t0},
		{name: "malformed: garbage", present: func(string) string { return "hello" }, want: CodeMalformed},
		{name: "malformed: checksum", present: func(raw string) string { return raw[:10] + flip(raw[10]) + raw[11:] }, want: CodeMalformed},
		{name: "malformed: empty", present: func(string) string { return "" }, want: CodeMalformed},
		{name: "not found", present: func(string) string { k, _ := keys.Generate("kw_"); return k }, want: CodeNotFound},
		{name: "revoked in spec, before the controller saw it", mutate: func(k *keywardenv1alpha1.APIKey) { k.Spec.Revoked = true }, want: CodeRevoked},
		{name: "revoked phase", mutate: func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseRevoked }, want: CodeRevoked},
		{name: "expired by the clock, before the controller saw it", mutate: func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = inAnHour }, now: t0.Add(time.Hour), want: CodeExpired},
		{name: "a nanosecond before expiry", mutate: func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = inAnHour }, now: t0.Add(time.Hour - 1), want: ""},
		{name: "expired phase", mutate: func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseExpired }, want: CodeExpired},
		{name: "pending", mutate: func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhasePending }, want: CodeNotActive},
		{name: "refused", mutate: func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseRefused }, want: CodeNotActive},
		{name: "being deleted", mutate: func(k *keywardenv1alpha1.APIKey) { k.DeletionTimestamp = &metav1.Time{Time: t0} }, want: CodeNotActive},
		// Whose keys a request accepts: it must say.
		{name: "no namespace and no class named: no key is accepted", untrusted: true, want: CodeWrongNamespace},
		{name: "every namespace, said explicitly", req: Request{AnyNamespace: true}},
		{name: "wrong namespace", req: Request{Namespaces: []string{"other"}}, want: CodeWrongNamespace},
		{name: "one of the namespaces named", req: Request{Namespaces: []string{"other", "ns"}}},
		{name: "none of the namespaces named", req: Request{Namespaces: []string{"other", "sandbox"}}, want: CodeWrongNamespace},
		{name: "a trusted class", mutate: inClass("payments"), req: Request{Classes: []string{"sandbox", "payments"}}},
		{name: "a class not trusted", mutate: inClass("sandbox"), req: Request{Classes: []string{"payments"}}, want: CodeWrongClass},
		{name: "no class, when classes are named", req: Request{Classes: []string{"payments"}}, want: CodeWrongClass},
		{name: "a class asked for in spec but not granted", mutate: func(k *keywardenv1alpha1.APIKey) { k.Spec.ClassName = "payments" }, req: Request{Classes: []string{"payments"}}, want: CodeWrongClass},
		{name: "trusted class, namespace not trusted", mutate: inClass("payments"), req: Request{Namespaces: []string{"other"}, Classes: []string{"payments"}}, want: CodeWrongNamespace},
		{name: "trusted namespace, class not trusted", mutate: inClass("sandbox"), req: Request{Namespaces: []string{"ns"}, Classes: []string{"payments"}}, want: CodeWrongClass},
		{name: "trusted namespace and class", mutate: inClass("payments"), req: Request{Namespaces: []string{"ns"}, Classes: []string{"payments"}}},
		{name: "a key that no longer fits its class is in no class", mutate: func(k *keywardenv1alpha1.APIKey) {
			inClass("payments")(k)
			k.Status.Conditions = []metav1.Condition{{Type: keywardenv1alpha1.ConditionClassCompliant, Status: metav1.ConditionFalse, Reason: keywardenv1alpha1.ReasonNamespaceNotAllowed}}
		}, req: Request{Classes: []string{"payments"}}, want: CodeWrongClass},
		{name: "a key that fits its class, said so", mutate: func(k *keywardenv1alpha1.APIKey) {
			inClass("payments")(k)
			k.Status.Conditions = []metav1.Condition{{Type: keywardenv1alpha1.ConditionClassCompliant, Status: metav1.ConditionTrue, Reason: keywardenv1alpha1.ReasonCompliant}}
		}, req: Request{Classes: []string{"payments"}}},
		{name: "AnyNamespace does not widen named namespaces", req: Request{Namespaces: []string{"other"}, AnyNamespace: true}, want: CodeWrongNamespace},
		{name: "wrong role", req: Request{Role: "admin"}, want: CodeWrongRole},
		{name: "missing scope", req: Request{Scopes: []string{"logs:read", "logs:write"}}, want: CodeInsufficientScope},
		{name: "no scopes at all", mutate: func(k *keywardenv1alpha1.APIKey) { k.Status.Scopes = nil }, req: Request{Scopes: []string{"logs:read"}}, want: CodeInsufficientScope},
		// The grant in status is what the key may do; a spec edited to
		// ask for more grants nothing until the controller admits it.
		{name: "a role asked for in spec but not granted", mutate: func(k *keywardenv1alpha1.APIKey) { k.Spec.Role = "admin" }, req: Request{Role: "admin"}, want: CodeWrongRole},
		{name: "a scope asked for in spec but not granted", mutate: func(k *keywardenv1alpha1.APIKey) { k.Spec.Scopes = append(k.Spec.Scopes, "users:admin") }, req: Request{Scopes: []string{"users:admin"}}, want: CodeInsufficientScope},
		{name: "a later expiry asked for in spec but not granted", mutate: func(k *keywardenv1alpha1.APIKey) {
			k.Status.ExpiresAt = inAnHour
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: 87600 * time.Hour}
		}, now: t0.Add(2 * time.Hour), want: CodeExpired},
		{name: "another owner asked for in spec but not granted", mutate: func(k *keywardenv1alpha1.APIKey) { k.Spec.Owner = "someone-else@example.com" }, now: t0},
		// Keys issued by the release before grants were recorded answer
		// as they did then, until the controller records their grant.
		{name: "before grants were recorded: the spec's role", mutate: func(k *keywardenv1alpha1.APIKey) {
			k.Status.Role, k.Status.Owner, k.Status.Scopes = "", "", nil
			k.Spec.Role = "admin"
		}, req: Request{Role: "readonly"}, want: CodeWrongRole},
		{name: "before grants were recorded: expiry from spec.lifetime", mutate: func(k *keywardenv1alpha1.APIKey) {
			k.Status.Role, k.Status.Owner = "", ""
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: time.Hour}
		}, now: t0.Add(time.Hour), want: CodeExpired},
		// A key granted no role (issued before grants were recorded, its
		// spec asking for a role its class refuses) verifies nothing,
		// whatever its spec asks for.
		{name: "granted no role", mutate: func(k *keywardenv1alpha1.APIKey) {
			k.Status.Role, k.Status.Scopes = "", nil
			k.Spec.Role = "admin"
		}, want: CodeNotActive},
		{name: "revocation wins over a wrong namespace", mutate: func(k *keywardenv1alpha1.APIKey) { k.Spec.Revoked = true }, req: Request{Namespaces: []string{"other"}}, want: CodeRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := NewIndex()
			raw, k := issued(t, "ns", "key", tt.mutate)
			ix.Upsert(k)
			req := tt.req
			req.Key = raw
			if !req.Trusts() && !tt.untrusted {
				req.Namespaces = []string{"ns"}
			}
			if tt.present != nil {
				req.Key = tt.present(raw)
			}
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			res := ix.Verify(req, now)
			if res.Code != tt.want || res.Valid != (tt.want == "") {
				t.Fatalf("Verify = valid %v code %q, want code %q", res.Valid, res.Code, tt.want)
			}
			if !res.Valid {
				if res.Owner != "" || res.Role != "" || res.Scopes != nil {
					t.Errorf("a rejection discloses the key's details: %+v", res)
				}
				return
			}
			if res.Namespace != "ns" || res.Name != "key" || res.Owner != "team@example.com" || res.Role != "readonly" || res.KeyPrefix != raw[:8] {
				t.Errorf("Verify = %+v", res)
			}
			if res.Class != k.Status.ClassName {
				t.Errorf("class = %q, want the granted class %q", res.Class, k.Status.ClassName)
			}
			if len(res.Scopes) != 2 || res.Scopes[0] != "audit:read" || res.Scopes[1] != "logs:read" {
				t.Errorf("scopes = %v, want the key's scopes sorted", res.Scopes)
			}
		})
	}
}

// inClass records the key as issued under a class.
func inClass(class string) func(*keywardenv1alpha1.APIKey) {
	return func(k *keywardenv1alpha1.APIKey) { k.Spec.ClassName, k.Status.ClassName = class, class }
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestIndexFollowsTheAPIKey(t *testing.T) {
	ix := NewIndex()
	raw1, k := issued(t, "ns", "key", nil)
	ix.Upsert(k)
	if ix.Len() != 1 {
		t.Fatalf("Len = %d, want 1", ix.Len())
	}

	// Reissued: the old hash is dropped, not kept beside the new one.
	raw2, k2 := issued(t, "ns", "key", nil)
	ix.Upsert(k2)
	if ix.Len() != 1 {
		t.Fatalf("Len after reissue = %d, want 1", ix.Len())
	}
	if got := ix.Verify(Request{Key: raw1, AnyNamespace: true}, t0).Code; got != CodeNotFound {
		t.Errorf("old key after reissue: %q, want NOT_FOUND", got)
	}
	if !ix.Verify(Request{Key: raw2, AnyNamespace: true}, t0).Valid {
		t.Errorf("new key after reissue is not valid")
	}

	// Being reissued: no hash in status, nothing indexed.
	k3 := k2.DeepCopy()
	k3.Status.KeyHash = ""
	ix.Upsert(k3)
	if ix.Len() != 0 || ix.Verify(Request{Key: raw2, AnyNamespace: true}, t0).Code != CodeNotFound {
		t.Errorf("a key without a hash stays indexed")
	}

	ix.Upsert(k2)
	ix.Remove("ns", "key")
	if ix.Len() != 0 || ix.Verify(Request{Key: raw2, AnyNamespace: true}, t0).Code != CodeNotFound {
		t.Errorf("a removed key stays indexed")
	}
	ix.Remove("ns", "absent")
}

func TestVerifyResultDoesNotAliasExpiry(t *testing.T) {
	ix := NewIndex()
	raw, k := issued(t, "ns", "key", func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = &metav1.Time{Time: t0.Add(time.Hour)} })
	ix.Upsert(k)
	res := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0)
	*res.ExpiresAt = t0.Add(1000 * time.Hour)
	if ix.Verify(Request{Key: raw, AnyNamespace: true}, t0.Add(2*time.Hour)).Valid {
		t.Errorf("changing a result's expiry changed the index")
	}
}

// Keys issued before grants were recorded (no status.role) answer as that
// release's verifier did: spec.scopes, or status.scopes when it names none.
func TestVerifyBeforeGrantsWereRecorded(t *testing.T) {
	legacy := func(k *keywardenv1alpha1.APIKey) { k.Status.Owner, k.Status.Role = "", "" }
	ix := NewIndex()
	raw, k := issued(t, "ns", "inherits", func(k *keywardenv1alpha1.APIKey) {
		legacy(k)
		k.Spec.Scopes = nil
		k.Status.Scopes = []keywardenv1alpha1.Scope{"logs:read", "logs:write"}
	})
	ix.Upsert(k)
	if res := ix.Verify(Request{Key: raw, AnyNamespace: true, Scopes: []string{"logs:write"}}, t0); !res.Valid || len(res.Scopes) != 2 || res.Role != "readonly" {
		t.Errorf("a key without scopes does not get its role's: %+v", res)
	}

	raw, k = issued(t, "ns", "narrowed", func(k *keywardenv1alpha1.APIKey) {
		legacy(k)
		k.Spec.Scopes = []keywardenv1alpha1.Scope{"logs:read"}
		k.Status.Scopes = []keywardenv1alpha1.Scope{"logs:read", "logs:write"}
	})
	ix.Upsert(k)
	if res := ix.Verify(Request{Key: raw, AnyNamespace: true, Scopes: []string{"logs:write"}}, t0); res.Code != CodeInsufficientScope {
		t.Errorf("a scope the spec no longer names verifies: %+v", res)
	}
}

func TestIndexLastUsedAt(t *testing.T) {
	ix := NewIndex()
	nn := types.NamespacedName{Namespace: "ns", Name: "key"}
	if got := ix.LastUsedAt(nn); !got.IsZero() {
		t.Errorf("not indexed: %v, want zero", got)
	}
	_, k := issued(t, "ns", "key", nil)
	ix.Upsert(k)
	if got := ix.LastUsedAt(nn); !got.IsZero() {
		t.Errorf("never used: %v, want zero", got)
	}
	k.Status.LastUsedAt = &metav1.Time{Time: t0.Add(time.Minute)}
	ix.Upsert(k)
	if got := ix.LastUsedAt(nn); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("used: %v, want %v", got, t0.Add(time.Minute))
	}
	ix.Remove("ns", "key")
	if got := ix.LastUsedAt(nn); !got.IsZero() {
		t.Errorf("removed: %v, want zero", got)
	}
}

func TestCovered(t *testing.T) {
	const interval = time.Minute
	for _, tt := range []struct {
		name     string
		recorded time.Time
		want     bool
	}{
		{"nothing recorded", time.Time{}, false},
		{"recorded ten seconds before, by another replica", t0.Add(-10 * time.Second), true},
		{"recorded just under half an interval before", t0.Add(-interval/2 + time.Millisecond), true},
		{"recorded half an interval before", t0.Add(-interval / 2), false},
		{"recorded an interval before, by this replica's last flush", t0.Add(-interval), false},
		{"recorded after the use", t0.Add(5 * time.Second), true},
		// A time no replica's clock wrote (a status set to 2099) must not
		// stop every later write.
		{"recorded an interval after the use", t0.Add(interval), false},
		{"recorded years ahead", t0.AddDate(70, 0, 0), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := covered(t0, tt.recorded, interval); got != tt.want {
				t.Errorf("covered = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTwoAPIKeysWithOneHashAreBothRefused(t *testing.T) {
	ix := NewIndex()
	var reported [][]types.NamespacedName
	ix.OnConflict = func(added types.NamespacedName, others []types.NamespacedName) {
		reported = append(reported, append([]types.NamespacedName{added}, others...))
	}
	raw, a := issued(t, "ns", "a", nil)
	_, b := issued(t, "other", "b", nil)
	b.Status.KeyHash = a.Status.KeyHash // written by someone else than Keywarden
	ix.Upsert(a)
	if len(reported) != 0 {
		t.Fatal("a conflict reported for one key")
	}
	ix.Upsert(b)
	if res := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0); res.Code != CodeConflict || res.Valid || res.Owner != "" {
		t.Fatalf("Verify with two holders = %+v, want CONFLICT and nothing disclosed", res)
	}
	want := []types.NamespacedName{{Namespace: "other", Name: "b"}, {Namespace: "ns", Name: "a"}}
	if len(reported) != 1 || len(reported[0]) != 2 || reported[0][0] != want[0] || reported[0][1] != want[1] {
		t.Fatalf("OnConflict got %v, want once with %v", reported, want)
	}
	if ix.Len() != 2 {
		t.Errorf("Len = %d, want 2", ix.Len())
	}

	// An update of either keeps the conflict, and reports it no more.
	ix.Upsert(a)
	ix.Upsert(b)
	if got := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0).Code; got != CodeConflict {
		t.Fatalf("after an update of a: %q, want CONFLICT", got)
	}
	if len(reported) != 1 {
		t.Fatalf("OnConflict called %d times, want once: updates of keys already sharing a hash report nothing new", len(reported))
	}
	// Removing the impostor leaves the key valid for its own APIKey,
	// never NOT_FOUND.
	ix.Remove("other", "b")
	if res := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0); !res.Valid || res.Name != "a" {
		t.Fatalf("after removing b: %+v, want valid for a", res)
	}
	// And the other way round, with a moving to another hash.
	ix.Upsert(b)
	_, a2 := issued(t, "ns", "a", nil)
	ix.Upsert(a2)
	if res := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0); !res.Valid || res.Name != "b" {
		t.Fatalf("after a was reissued: %+v, want the hash to answer for b alone", res)
	}
	if ix.Len() != 2 {
		t.Errorf("Len = %d, want 2", ix.Len())
	}
}

// The index's map is keyed by a hash's first eight bytes: entries that
// share them must still be told apart by the whole hash, in either order
// and across removals, and only a whole hash held twice is a conflict.
func TestHashesSharingTheirFirstBytes(t *testing.T) {
	raw, a := issued(t, "ns", "a", nil)
	alike := func(name string, last byte) *keywardenv1alpha1.APIKey {
		_, k := issued(t, "ns", name, nil)
		sum := keys.Sum(raw)
		sum[len(sum)-1] ^= last // same first eight bytes, another hash
		k.Status.KeyHash = keys.HashPrefix + fmt.Sprintf("%x", sum)
		return k
	}
	b, c := alike("b", 1), alike("c", 2)
	for _, order := range [][]*keywardenv1alpha1.APIKey{{a, b, c}, {b, a, c}, {b, c, a}} {
		ix := NewIndex()
		var reported int
		ix.OnConflict = func(types.NamespacedName, []types.NamespacedName) { reported++ }
		for _, k := range order {
			ix.Upsert(k)
		}
		if res := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0); !res.Valid || res.Name != "a" {
			t.Fatalf("order %s: %+v, want valid for a", names(order), res)
		}
		if reported != 0 {
			t.Fatalf("order %s: a conflict reported for hashes that differ", names(order))
		}
		ix.Remove("ns", "b")
		if res := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0); !res.Valid || res.Name != "a" {
			t.Fatalf("order %s, b removed: %+v, want valid for a", names(order), res)
		}
		// A whole hash held twice is a conflict, reported with its
		// holders only.
		_, d := issued(t, "other", "d", nil)
		d.Status.KeyHash = a.Status.KeyHash
		var others []types.NamespacedName
		ix.OnConflict = func(_ types.NamespacedName, o []types.NamespacedName) { others = o }
		ix.Upsert(d)
		if got := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0).Code; got != CodeConflict {
			t.Fatalf("order %s, d holding a's hash: %q, want CONFLICT", names(order), got)
		}
		if len(others) != 1 || others[0].Name != "a" {
			t.Fatalf("order %s: conflict reported with %v, want a alone", names(order), others)
		}
		ix.Remove("ns", "a")
		ix.Remove("other", "d")
		if got := ix.Verify(Request{Key: raw, AnyNamespace: true}, t0).Code; got != CodeNotFound {
			t.Fatalf("order %s, a and d removed: %q, want NOT_FOUND", names(order), got)
		}
		if ix.Len() != 1 {
			t.Fatalf("order %s: Len = %d, want 1 (c)", names(order), ix.Len())
		}
	}
}

func names(ks []*keywardenv1alpha1.APIKey) string {
	s := ""
	for _, k := range ks {
		s += k.Name
	}
	return s
}

// A rotation leaves an APIKey with several keys: the current one, the next
// one while it is written into the Secret (valid as the current one), and
// those rotated out, each valid until the end of its grace period, then
// refused as ROTATED; a revocation or the expiry ends them all at once.
func TestRotatedKeys(t *testing.T) {
	cur, k := issued(t, "ns", "a", nil)
	next, _ := issued(t, "ns", "x", nil)
	inGrace, _ := issued(t, "ns", "y", nil)
	pastGrace, _ := issued(t, "ns", "z", nil)
	until := t0.Add(time.Hour)
	k.Status.ExpiresAt = &metav1.Time{Time: t0.Add(48 * time.Hour)}
	k.Status.Rotation = &keywardenv1alpha1.RotationStatus{
		Next: &keywardenv1alpha1.RecordedKey{KeyHash: keys.Hash(next), KeyPrefix: keys.DisplayPrefix(next)},
		Previous: []keywardenv1alpha1.PreviousKey{
			{RecordedKey: keywardenv1alpha1.RecordedKey{KeyHash: keys.Hash(inGrace), KeyPrefix: keys.DisplayPrefix(inGrace)},
				RotatedAt: metav1.Time{Time: t0}, ValidUntil: metav1.Time{Time: until}},
			{RecordedKey: keywardenv1alpha1.RecordedKey{KeyHash: keys.Hash(pastGrace), KeyPrefix: keys.DisplayPrefix(pastGrace)},
				RotatedAt: metav1.Time{Time: t0.Add(-time.Hour)}, ValidUntil: metav1.Time{Time: t0}},
		},
	}
	ix := NewIndex()
	ix.Upsert(k)
	req := func(key string) Request { return Request{Key: key, Namespaces: []string{"ns"}} }
	for _, key := range []string{cur, next} {
		if res := ix.Verify(req(key), t0); !res.Valid || res.Previous || res.ValidUntil != nil || res.Name != "a" {
			t.Errorf("current or next key: %+v, want valid for a and not previous", res)
		}
	}
	res := ix.Verify(req(inGrace), t0)
	if !res.Valid || !res.Previous || res.ValidUntil == nil || !res.ValidUntil.Equal(until) || res.Name != "a" || res.KeyPrefix != keys.DisplayPrefix(inGrace) {
		t.Fatalf("key in its grace period: %+v, want valid for a, previous, until %v", res, until)
	}
	var a VerifyResponse
	if err := json.Unmarshal([]byte(res.answer), &a); err != nil || !a.Previous || a.ValidUntil == nil || !a.ValidUntil.Equal(until) {
		t.Fatalf("the answer of a key in its grace period %s (%v) does not say it is previous and until when", res.answer, err)
	}
	if got := ix.Verify(req(inGrace), until).Code; got != CodeRotated {
		t.Errorf("key at the end of its grace: %q, want ROTATED", got)
	}
	if res := ix.Verify(req(pastGrace), t0); res.Code != CodeRotated || res.KeyPrefix != keys.DisplayPrefix(pastGrace) {
		t.Errorf("key past its grace: %+v, want ROTATED with its prefix", res)
	}
	if ix.Len() != 1 {
		t.Errorf("Len = %d, want 1 APIKey", ix.Len())
	}

	revoked := k.DeepCopy()
	revoked.Spec.Revoked = true
	ix.Upsert(revoked)
	for _, key := range []string{cur, next, inGrace, pastGrace} {
		if got := ix.Verify(req(key), t0).Code; got != CodeRevoked {
			t.Errorf("a key of a revoked APIKey: %q, want REVOKED for every generation", got)
		}
	}
	ix.Upsert(k)
	if got := ix.Verify(req(inGrace), k.Status.ExpiresAt.Time).Code; got != CodeExpired {
		t.Errorf("a previous key at the APIKey's expiry: %q, want EXPIRED", got)
	}

	// The rotation completes: the next key becomes current, and the key
	// it replaced is no longer current.
	done := k.DeepCopy()
	done.Status.KeyHash, done.Status.KeyPrefix = keys.Hash(next), keys.DisplayPrefix(next)
	done.Status.Rotation.Next = nil
	done.Status.Rotation.Previous = append([]keywardenv1alpha1.PreviousKey{{
		RecordedKey: keywardenv1alpha1.RecordedKey{KeyHash: keys.Hash(cur), KeyPrefix: keys.DisplayPrefix(cur)},
		RotatedAt:   metav1.Time{Time: t0}, ValidUntil: metav1.Time{Time: until},
	}}, done.Status.Rotation.Previous...)
	ix.Upsert(done)
	if res := ix.Verify(req(cur), t0); !res.Valid || !res.Previous {
		t.Errorf("the replaced key: %+v, want valid as previous", res)
	}
	if res := ix.Verify(req(next), t0); !res.Valid || res.Previous {
		t.Errorf("the new current key: %+v, want valid and current", res)
	}
	ix.Remove("ns", "a")
	for _, key := range []string{cur, next, inGrace, pastGrace} {
		if got := ix.Verify(req(key), t0).Code; got != CodeNotFound {
			t.Errorf("after the APIKey went: %q, want NOT_FOUND for every generation", got)
		}
	}
}
