package lifecycle

import (
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/policy"
)

var (
	now      = time.Date(2026, 11, 1, 12, 0, 0, 500_000_000, time.UTC)
	hashA    = "sha256:" + strings.Repeat("a", 64)
	hashB    = "sha256:" + strings.Repeat("b", 64)
	inAnHour = metav1.NewTime(now.Add(time.Hour).Truncate(time.Second))
)

// newKey is a key as created: Pending, nothing issued.
func newKey(mutate ...func(*keywardenv1alpha1.APIKey)) *keywardenv1alpha1.APIKey {
	k := &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "k", UID: "uid-k", Generation: 2, CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "k", Owner: "team", Role: "reader"},
		Status:     keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhasePending},
	}
	for _, m := range mutate {
		m(k)
	}
	return k
}

// issuedKey is an Active key whose Secret "k" (UID s1) holds hashA.
func issuedKey(mutate ...func(*keywardenv1alpha1.APIKey)) *keywardenv1alpha1.APIKey {
	k := newKey(func(k *keywardenv1alpha1.APIKey) {
		k.Status = keywardenv1alpha1.APIKeyStatus{
			Phase: keywardenv1alpha1.PhaseActive, KeyHash: hashA, KeyPrefix: "kw_aaaaa", KeySerial: 3,
			SecretRef: &keywardenv1alpha1.SecretReference{Name: "k", UID: "s1", ResourceVersion: "5"},
			IssuedAt:  &metav1.Time{Time: now.Add(-time.Hour).Truncate(time.Second)},
			Owner:     "team", Role: "reader",
		}
	})
	for _, m := range mutate {
		m(k)
	}
	return k
}

func issuedFor30Days(k *keywardenv1alpha1.APIKey) {
	k.Status.IssuedAt = &metav1.Time{Time: now.Add(-30 * 24 * time.Hour).Truncate(time.Second)}
}

func rotation(every time.Duration, grace *time.Duration, request string) func(*keywardenv1alpha1.APIKey) {
	return func(k *keywardenv1alpha1.APIKey) {
		k.Spec.Rotation = &keywardenv1alpha1.Rotation{Request: request}
		if every > 0 {
			k.Spec.Rotation.Every = &keywardenv1alpha1.Duration{Duration: every}
		}
		if grace != nil {
			k.Spec.Rotation.GracePeriod = &keywardenv1alpha1.Duration{Duration: *grace}
		}
	}
}

func handled(request string) func(*keywardenv1alpha1.APIKey) {
	return func(k *keywardenv1alpha1.APIKey) {
		if k.Status.Rotation == nil {
			k.Status.Rotation = &keywardenv1alpha1.RotationStatus{}
		}
		k.Status.Rotation.Request = request
	}
}

// rotating is a key whose rotation recorded hashB as the next key.
func rotating(k *keywardenv1alpha1.APIKey) {
	handled("r1")(k)
	k.Status.Rotation.Next = &keywardenv1alpha1.RecordedKey{KeyHash: hashB, KeyPrefix: "kw_bbbbb"}
}

func stalledOn(reason, msg string) func(*keywardenv1alpha1.APIKey) {
	return func(k *keywardenv1alpha1.APIKey) {
		apimeta.SetStatusCondition(&k.Status.Conditions, metav1.Condition{Type: keywardenv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, Message: msg})
	}
}

func reissuing(k *keywardenv1alpha1.APIKey) {
	k.Status.Phase, k.Status.KeyHash, k.Status.KeyPrefix, k.Status.SecretRef = keywardenv1alpha1.PhasePending, "", "", nil
}

// Secrets at the key's name.
var (
	ownSecret     = &Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true}
	foreignSecret = &Secret{Name: "k", UID: "s9"}
	sealedSecret  = &Secret{Name: "k", UID: "s2", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb", Sealed: true}
	unsealed      = &Secret{Name: "k", UID: "s2", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"}
	restored      = &Secret{Name: "k", UID: "s2", Owned: true, Read: true, Hash: hashA, Prefix: "kw_aaaaa"}
	// restoredUncontrolled is this key's Secret as a restore without the
	// key's status brings it back: typed and labelled, no owner.
	// It was created a second before the key (newKey: an hour ago).
	restoredUncontrolled = &Secret{Name: "k", UID: "s2", Read: true, Restored: true, Hash: hashB, Prefix: "kw_bbbbb", Created: now.Add(-time.Hour - time.Second)}
)

func withSecret(s *Secret) func(*Observed) { return func(o *Observed) { o.Secret = s } }

func peers(owner string, limit int, keys ...keywardenv1alpha1.APIKey) func(*Observed) {
	return func(o *Observed) {
		o.Policy.MaxActiveKeysPerOwner = limit
		o.Owners[owner] = &OwnerKeys{Peers: keys}
	}
}

func peer(uid string, issued bool) keywardenv1alpha1.APIKey {
	k := keywardenv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour))}}
	if issued {
		k.Status.KeyHash = hashB
	}
	return k
}

func expiringSoon(want bool) func(*testing.T, *keywardenv1alpha1.APIKeyStatus) {
	return func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
		t.Helper()
		if got := apimeta.IsStatusConditionTrue(st.Conditions, keywardenv1alpha1.ConditionExpiringSoon); got != want {
			t.Errorf("ExpiringSoon %v, want %v", got, want)
		}
		if !want && apimeta.FindStatusCondition(st.Conditions, keywardenv1alpha1.ConditionExpiringSoon) != nil {
			t.Error("an ExpiringSoon condition that is not True is left in status")
		}
	}
}

type want struct {
	phase       keywardenv1alpha1.APIKeyPhase
	reason      string
	stalled     bool
	progressing bool
	refused     string
	secret      SecretAction
	events      []string
	requeue     time.Duration
	routine     bool // the requeue is for routine work
	hold        bool // nothing written this pass
	reserve     *Reservation
	needOwner   string
	err         bool
	status      func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus)
}

// gold is a class that requires rotation every hour and holds a
// rotated-out key's grace to a minute.
var goldRotation = &keywardenv1alpha1.ClassRotation{
	MaxEvery: &keywardenv1alpha1.Duration{Duration: time.Hour}, MaxGracePeriod: &keywardenv1alpha1.Duration{Duration: time.Minute},
}

func goldClass(rot *keywardenv1alpha1.ClassRotation) *policy.Policy {
	p := policy.FromClass(&keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "gold"},
		Spec: keywardenv1alpha1.APIKeyClassSpec{Rotation: rot}})
	return &p
}

// grantedGold is a key granted under gold, its spec naming another class
// (empty: gold too).
func grantedGold(specClass string) func(*keywardenv1alpha1.APIKey) {
	return func(k *keywardenv1alpha1.APIKey) {
		k.Status.ClassName, k.Spec.ClassName = "gold", specClass
		if specClass == "" {
			k.Spec.ClassName = "gold"
		}
	}
}

// classGone is a spec's class that does not resolve; grantClass the class
// the key is granted under, as it stands (nil: deleted).
func classGone(grantClass *policy.Policy) func(*Observed) {
	return func(o *Observed) {
		o.Policy, o.Violation = policy.Policy{}, &policy.Violation{Reason: keywardenv1alpha1.ReasonClassNotFound, Message: "m"}
		o.GrantClass = grantClass
	}
}

// graceUntil checks that the rotated-out key is valid until the given
// time after the rotation, and what status records of the class's rules.
func graceUntil(d time.Duration, recorded *keywardenv1alpha1.ClassRotation) func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
	return func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
		stamp := now.Truncate(time.Second)
		if p := st.Rotation.Previous; len(p) != 1 || !p[0].ValidUntil.Time.Equal(stamp.Add(d)) {
			t.Errorf("previous %+v, want valid for %s", p, d)
		}
		if !equality.Semantic.DeepEqual(st.ClassRotation, recorded) {
			t.Errorf("classRotation %+v, want %+v", st.ClassRotation, recorded)
		}
	}
}

// beforeGrants is a key as a release that recorded no grants left it.
func beforeGrants(k *keywardenv1alpha1.APIKey) { k.Status.Owner, k.Status.Role = "", "" }

// readerClass is the key's class c, which allows the role reader only.
func readerClass(o *Observed) {
	o.Key.Spec.ClassName, o.Key.Status.ClassName = "c", "c"
	o.Policy = policy.FromClass(&keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Spec: keywardenv1alpha1.APIKeyClassSpec{Roles: []keywardenv1alpha1.ClassRole{{Name: "reader"}}}})
}

// ungranted checks a key recorded with its owner and no role, not Ready.
func ungranted(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
	t.Helper()
	if st.Owner != "team" || st.Role != "" || len(st.Scopes) != 0 {
		t.Errorf("grant %s/%s %v, want team and no role", st.Owner, st.Role, st.Scopes)
	}
}

// TestDecide holds every transition of a key's life, one row each.
func TestDecide(t *testing.T) {
	stamp := &metav1.Time{Time: now.Truncate(time.Second)}
	// nextHour wakes a key that rotated now and must rotate every hour.
	nextHour := stamp.Add(time.Hour).Sub(now)
	limitMsg := policy.LimitViolation("other", "ns", 1, 1).Message
	rows := []struct {
		name    string
		key     *keywardenv1alpha1.APIKey
		observe []func(*Observed)
		want    want
	}{
		// Issuance.
		{
			name: "a new key without a Secret is issued, taking its owner's place",
			key:  newKey(), observe: []func(*Observed){peers("team", 10)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				secret: SecretIssue, reserve: &Reservation{Owner: "team"}},
		},
		{
			name: "a new key whose owner's keys were not read asks for them",
			key:  newKey(),
			want: want{needOwner: "team"},
		},
		{
			name: "the Secret created for a new key: Active, its grant recorded",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), func(o *Observed) {
				o.Created = &Created{Hash: hashB, Prefix: "kw_bbbbb", UID: "s2"}
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyIssued}, reserve: &Reservation{Owner: "team"},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.KeyHash != hashB || st.KeyPrefix != "kw_bbbbb" || st.SecretRef == nil || st.SecretRef.UID != "s2" || st.SecretRef.Name != "k" {
						t.Errorf("status records %q %q %+v, want the created Secret's key", st.KeyHash, st.KeyPrefix, st.SecretRef)
					}
					if !st.IssuedAt.Equal(stamp) || st.Owner != "team" || st.Role != "reader" {
						t.Errorf("issuedAt %v owner %q role %q, want %v team reader", st.IssuedAt, st.Owner, st.Role, stamp)
					}
					if !apimeta.IsStatusConditionTrue(st.Conditions, keywardenv1alpha1.ConditionClassCompliant) {
						t.Error("a key issued under its class is not ClassCompliant")
					}
				}},
		},
		{
			name: "a new key with a lifetime wakes at its expiry once issued",
			key:  newKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: time.Hour} }),
			observe: []func(*Observed){peers("team", 10), func(o *Observed) {
				o.Created = &Created{Hash: hashB, Prefix: "kw_bbbbb", UID: "s2"}
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyIssued}, reserve: &Reservation{Owner: "team"},
				requeue: inAnHour.Sub(now) + expirySlack,
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.ExpiresAt == nil || !st.ExpiresAt.Equal(&inAnHour) {
						t.Errorf("expiresAt %v, want %v", st.ExpiresAt, inAnHour)
					}
				}},
		},
		{
			name: "a new key over its owner's limit is refused",
			key:  newKey(), observe: []func(*Observed){peers("team", 1, peer("p", true))},
			want: want{phase: keywardenv1alpha1.PhaseRefused, reason: keywardenv1alpha1.ReasonActiveKeyLimit, progressing: true,
				events: []string{keywardenv1alpha1.EventKeyRefused}},
		},
		{
			name:    "a key refused before is refused without another event",
			key:     newKey(func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseRefused }),
			observe: []func(*Observed){peers("team", 1, peer("p", true))},
			want:    want{phase: keywardenv1alpha1.PhaseRefused, reason: keywardenv1alpha1.ReasonActiveKeyLimit, progressing: true},
		},
		{
			name: "a key refused for a place still being issued is decided again shortly",
			key:  newKey(), observe: []func(*Observed){peers("team", 1, peer("p", false)), func(o *Observed) {
				o.Owners["team"].Admitted = map[types.UID]bool{"p": true}
			}},
			want: want{phase: keywardenv1alpha1.PhaseRefused, reason: keywardenv1alpha1.ReasonActiveKeyLimit, progressing: true,
				events: []string{keywardenv1alpha1.EventKeyRefused}, requeue: AdmissionRecheck},
		},
		{
			name: "a role its class does not allow stalls the key",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), func(o *Observed) {
				o.Policy.Roles = map[string][]keywardenv1alpha1.Scope{"admin": nil}
			}},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonRoleNotAllowed, stalled: true,
				events: []string{keywardenv1alpha1.EventPolicyViolation}},
		},
		{
			name: "a key stalled on the same rule gets no second event",
			key:  newKey(stalledOn(keywardenv1alpha1.ReasonRoleNotAllowed, "m")),
			observe: []func(*Observed){func(o *Observed) {
				o.Policy.Roles = map[string][]keywardenv1alpha1.Scope{"admin": nil}
			}},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonRoleNotAllowed, stalled: true},
		},
		{
			name: "a class that does not resolve stalls a new key",
			key:  newKey(), observe: []func(*Observed){func(o *Observed) {
				o.Violation = &policy.Violation{Reason: keywardenv1alpha1.ReasonClassNotFound, Message: "m"}
			}},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonClassNotFound, stalled: true,
				events: []string{keywardenv1alpha1.EventPolicyViolation}},
		},
		{
			name: "a namespace a class refuses is looked at again when its labels are not watched",
			key:  newKey(), observe: []func(*Observed){func(o *Observed) {
				o.Violation = &policy.Violation{Reason: keywardenv1alpha1.ReasonNamespaceNotAllowed, Message: "m"}
				o.NamespacesUnwatched = true
			}},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonNamespaceNotAllowed, stalled: true,
				events: []string{keywardenv1alpha1.EventPolicyViolation}, requeue: LimitRecheck},
		},

		// A Secret found where a key is to be issued.
		{
			name: "an owned Secret Keywarden sealed for the key is adopted",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), withSecret(sealedSecret)},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyIssued}, reserve: &Reservation{Owner: "team"},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.KeyHash != hashB || st.SecretRef.UID != "s2" {
						t.Errorf("adopted %q in %+v, want the Secret's key", st.KeyHash, st.SecretRef)
					}
				}},
		},
		{
			name: "an owned Secret without Keywarden's seal is deleted, never recorded",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), withSecret(unsealed)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				secret: SecretReplace, reserve: &Reservation{Owner: "team"},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.KeyHash != "" {
						t.Errorf("recorded %q from an unsealed Secret", st.KeyHash)
					}
				}},
		},
		{
			name: "once the unsealed Secret is deleted, a new key is issued",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), func(o *Observed) { o.TamperedDeleted = true }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				secret: SecretIssue, reserve: &Reservation{Owner: "team"}, events: []string{keywardenv1alpha1.EventSecretTampered}},
		},
		{
			name: "and once created, both are told",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), func(o *Observed) {
				o.TamperedDeleted = true
				o.Created = &Created{Hash: hashA, Prefix: "kw_aaaaa", UID: "s3"}
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, reserve: &Reservation{Owner: "team"},
				events: []string{keywardenv1alpha1.EventSecretTampered, keywardenv1alpha1.EventKeyIssued}},
		},
		{
			name: "an owned Secret being deleted is waited for",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), withSecret(&Secret{Name: "k", UID: "s2", Owned: true, Read: true, Deleting: true})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				reserve: &Reservation{Owner: "team"}, requeue: 5 * time.Second},
		},
		{
			name: "an owned Secret the cache lists and the API server no longer has is waited for",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), withSecret(&Secret{Name: "k", UID: "s2", Owned: true, Read: true, Gone: true})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				reserve: &Reservation{Owner: "team"}, requeue: 100 * time.Millisecond},
		},
		{
			name: "a foreign Secret of the name stalls the key and is left alone",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), withSecret(foreignSecret)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				reserve: &Reservation{Owner: "team"}, events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck},
		},
		{
			name:    "a foreign Secret reported before gets no second event",
			key:     newKey(stalledOn(keywardenv1alpha1.ReasonSecretConflict, "m")),
			observe: []func(*Observed){peers("team", 10), withSecret(foreignSecret)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				reserve: &Reservation{Owner: "team"}, requeue: ConflictRecheck},
		},
		{
			name: "a create that ran into a Secret no reader shows is tried again at once",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), func(o *Observed) { o.CreateRaced = true }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				reserve: &Reservation{Owner: "team"}, requeue: time.Millisecond},
		},
		{
			name: "a create that ran into the Secret the pass deleted waits for it to go",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), func(o *Observed) { o.CreateRaced, o.TamperedDeleted = true, true }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				reserve: &Reservation{Owner: "team"}, requeue: time.Second, events: []string{keywardenv1alpha1.EventSecretTampered}},
		},
		{
			name: "a Secret the API server refuses as invalid stalls the key",
			key:  newKey(), observe: []func(*Observed){peers("team", 10), func(o *Observed) { o.CreateRefused = "The API server refuses Secret k: m" }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretInvalid, stalled: true,
				reserve: &Reservation{Owner: "team"}},
		},

		// An issued key.
		{
			name: "an issued key whose Secret is in place stays Active",
			key:  issuedKey(), observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseActive},
		},
		{
			name:    "an issued key wakes at its expiry",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = inAnHour.DeepCopy() }),
			observe: []func(*Observed){withSecret(ownSecret)},
			want:    want{phase: keywardenv1alpha1.PhaseActive, requeue: inAnHour.Sub(now) + expirySlack},
		},
		{
			name: "a deleted Secret starts a reissue, recorded before a new key is written",
			key:  issuedKey(),
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonReissuing, progressing: true, requeue: time.Millisecond,
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.KeyHash != "" || st.SecretRef != nil || st.KeySerial != 4 || st.IssuedAt == nil {
						t.Errorf("hash %q ref %+v serial %d issuedAt %v; want the key forgotten, serial 4, issuance kept", st.KeyHash, st.SecretRef, st.KeySerial, st.IssuedAt)
					}
				}},
		},
		{
			name: "the same key restored in another Secret object is the issued key",
			key:  issuedKey(), observe: []func(*Observed){withSecret(restored)},
			want: want{phase: keywardenv1alpha1.PhaseActive, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if st.SecretRef.UID != "s2" || st.KeyHash != hashA {
					t.Errorf("ref %+v hash %q, want the restored Secret recorded", st.SecretRef, st.KeyHash)
				}
			}},
		},
		{
			name:    "a recorded Secret changed since, still holding the key: its new version is recorded",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.SecretRef.ResourceVersion = "5" }),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "6", Owned: true, Read: true, Hash: hashA, Prefix: "kw_aaaaa"})},
			want: want{phase: keywardenv1alpha1.PhaseActive, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if st.SecretRef.ResourceVersion != "6" || st.SecretRef.UID != "s1" {
					t.Errorf("secretRef %+v, want version 6 recorded", st.SecretRef)
				}
			}},
		},
		{
			name:    "a value edited in place is treated as a replaced Secret",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.SecretRef.ResourceVersion = "5" }),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "6", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want:    want{secret: SecretReplace},
		},
		{
			name:    "an owned Secret holding the key that lost its labels gets them back",
			key:     issuedKey(),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Unlabelled: true})},
			want:    want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRelabel},
		},
		{
			name:    "an unlabelled Secret changed in place is read and replaced, not relabelled",
			key:     issuedKey(),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "6", Owned: true, Unlabelled: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want:    want{secret: SecretReplace},
		},
		{
			name:    "a Secret an earlier release recorded without its version is not taken on trust: unread, the pass fails",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.SecretRef.ResourceVersion = "" }),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "6", Owned: true})},
			want:    want{err: true},
		},
		{
			name:    "a Secret an earlier release recorded without its version, read and holding the key: its version is recorded",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.SecretRef.ResourceVersion = "" }),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "6", Owned: true, Read: true, Hash: hashA, Prefix: "kw_aaaaa"})},
			want: want{phase: keywardenv1alpha1.PhaseActive, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if st.SecretRef.ResourceVersion != "6" {
					t.Errorf("secretRef %+v, want version 6 recorded", st.SecretRef)
				}
			}},
		},
		{
			name:    "a Secret an earlier release recorded without its version, changed in place: replaced",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.SecretRef.ResourceVersion = "" }),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "6", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want:    want{secret: SecretReplace},
		},
		{
			name: "another value in another Secret object is deleted",
			key:  issuedKey(), observe: []func(*Observed){withSecret(sealedSecret)},
			want: want{secret: SecretReplace},
		},
		{
			name: "and the key is then reissued",
			key:  issuedKey(), observe: []func(*Observed){func(o *Observed) { o.TamperedDeleted = true }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonReissuing, progressing: true, requeue: time.Millisecond,
				events: []string{keywardenv1alpha1.EventSecretTampered}},
		},
		// A restore: the Secret comes back without its owner reference,
		// the APIKey with a new UID, and its status (the key's hash)
		// written after the create.
		{
			name:    "a Secret nothing controls, holding the key status records, is adopted with the key unchanged",
			key:     issuedKey(),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s2", ResourceVersion: "9", Read: true, Hash: hashA, Prefix: "kw_aaaaa"})},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretAdopt, events: []string{keywardenv1alpha1.EventSecretAdopted},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.KeyHash != hashA || st.KeySerial != 3 || st.SecretRef.UID != "s2" {
						t.Errorf("hash %q serial %d ref %+v, want the same key in the adopted Secret", st.KeyHash, st.KeySerial, st.SecretRef)
					}
				}},
		},
		{
			name:    "a Secret nothing controls, holding another key, is not adopted",
			key:     issuedKey(),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s2", ResourceVersion: "9", Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck},
		},
		{
			name:    "a Secret another object controls is not adopted, whatever it holds",
			key:     issuedKey(),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s2", ResourceVersion: "9", Controlled: true, Read: true, Hash: hashA, Prefix: "kw_aaaaa"})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck},
		},
		{
			name: "a key just created over a Secret nothing controls waits, writing nothing, for a restore's status",
			key: newKey(func(k *keywardenv1alpha1.APIKey) {
				k.CreationTimestamp = metav1.NewTime(now.Add(-time.Second))
			}),
			observe: []func(*Observed){peers("team", 10), withSecret(&Secret{Name: "k", UID: "s2", Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				reserve: &Reservation{Owner: "team"}, hold: true, requeue: RestoreWait - time.Second},
		},
		{
			name:    "past the wait, a Secret nothing controls is a conflict, never adopted without a recorded hash",
			key:     newKey(),
			observe: []func(*Observed){peers("team", 10), withSecret(&Secret{Name: "k", UID: "s2", Read: true, Hash: hashB, Prefix: "kw_bbbbb", Sealed: true})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				reserve: &Reservation{Owner: "team"}, events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck},
		},
		{
			name: "a restored Secret whose status does not come back waits for it, stalled, saying until when",
			key: newKey(func(k *keywardenv1alpha1.APIKey) {
				k.CreationTimestamp = metav1.NewTime(now.Add(-time.Minute))
			}),
			observe: []func(*Observed){peers("team", 10), withSecret(&Secret{Name: "k", UID: "s2", Read: true, Restored: true, Hash: hashB, Prefix: "kw_bbbbb", Created: now.Add(-61 * time.Second)})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				reserve: &Reservation{Owner: "team"}, events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck},
		},
		{
			name:    "a Secret of the key's shape made long before the APIKey (orphaned, not restored) is a conflict, never replaced",
			key:     newKey(),
			observe: []func(*Observed){peers("team", 10), withSecret(&Secret{Name: "k", UID: "s2", Read: true, Restored: true, Hash: hashB, Prefix: "kw_bbbbb", Created: now.Add(-30 * 24 * time.Hour)})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				reserve: &Reservation{Owner: "team"}, events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck},
		},
		{
			name:    "past the wait for its status, a restored Secret is replaced by a new key",
			key:     newKey(),
			observe: []func(*Observed){peers("team", 10), withSecret(restoredUncontrolled)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				secret: SecretReplace, reserve: &Reservation{Owner: "team"}},
		},
		{
			name: "the key issued in place of a restored Secret is told as such, with a warning",
			key:  newKey(),
			observe: []func(*Observed){peers("team", 10), func(o *Observed) {
				o.TamperedDeleted, o.RestoreReplaced = true, true
				o.Created = &Created{Hash: hashB, Prefix: "kw_bbbbb", UID: "s3"}
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, reserve: &Reservation{Owner: "team"},
				events: []string{keywardenv1alpha1.EventKeyReissuedAfterRestore, keywardenv1alpha1.EventKeyIssued}},
		},
		{
			name:    "a restored Secret another object controls is never replaced",
			key:     newKey(),
			observe: []func(*Observed){peers("team", 10), withSecret(&Secret{Name: "k", UID: "s2", Controlled: true, Restored: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				reserve: &Reservation{Owner: "team"}, events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck},
		},
		{
			name: "a foreign Secret in the issued key's place ends that key for good",
			key:  issuedKey(), observe: []func(*Observed){withSecret(foreignSecret)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck,
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.KeyHash != "" || st.KeySerial != 4 {
						t.Errorf("hash %q serial %d, want the key forgotten and serial 4", st.KeyHash, st.KeySerial)
					}
				}},
		},
		{
			name: "a key being reissued records its new Secret, keeping its issuance",
			key:  issuedKey(reissuing), observe: []func(*Observed){func(o *Observed) {
				o.Created = &Created{Hash: hashB, Prefix: "kw_bbbbb", UID: "s2"}
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyReissued},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if !st.IssuedAt.Equal(&metav1.Time{Time: now.Add(-time.Hour).Truncate(time.Second)}) || st.KeyHash != hashB {
						t.Errorf("issuedAt %v hash %q, want the first issuance and the new key", st.IssuedAt, st.KeyHash)
					}
				}},
		},
		{
			name: "a key being reissued whose class is gone stalls",
			key:  issuedKey(reissuing), observe: []func(*Observed){func(o *Observed) {
				o.Violation = &policy.Violation{Reason: keywardenv1alpha1.ReasonClassNotFound, Message: "m"}
			}},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonClassNotFound, stalled: true,
				events: []string{keywardenv1alpha1.EventPolicyViolation}},
		},

		// Expiry.
		{
			name:    "an issued key past its expiry expires and loses its Secret",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = &metav1.Time{Time: now.Add(-time.Second)} }),
			observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseExpired, reason: keywardenv1alpha1.ReasonExpired, stalled: true, secret: SecretDelete,
				events: []string{keywardenv1alpha1.EventKeyExpired}},
		},
		{
			name: "a key whose expiry came before it was issued expires",
			key:  newKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.ExpiresAt = &metav1.Time{Time: now.Add(-time.Second)} }),
			want: want{phase: keywardenv1alpha1.PhaseExpired, reason: keywardenv1alpha1.ReasonExpired, stalled: true,
				events: []string{keywardenv1alpha1.EventKeyExpired}},
		},
		{
			name: "a key declared with an expiry already past when it was created waits for a later one",
			key: newKey(func(k *keywardenv1alpha1.APIKey) {
				k.Spec.ExpiresAt = &metav1.Time{Time: k.CreationTimestamp.Add(-time.Hour)}
			}),
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonExpiryInPast, stalled: true,
				events: []string{keywardenv1alpha1.EventPolicyViolation}},
		},
		{
			name:    "a key stalled on a foreign Secret wakes at its expiry, not a minute later",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = &metav1.Time{Time: now.Add(5 * time.Second)} }),
			observe: []func(*Observed){withSecret(foreignSecret)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: 5*time.Second + expirySlack},
		},

		// Revocation and the end of a key.
		{
			name:    "a key revoked in its spec is revoked and loses its Secret",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.Revoked = true }),
			observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseRevoked, reason: keywardenv1alpha1.ReasonRevoked, secret: SecretDelete,
				events: []string{keywardenv1alpha1.EventKeyRevoked},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if !st.RevokedAt.Equal(stamp) {
						t.Errorf("revokedAt %v, want %v", st.RevokedAt, stamp)
					}
				}},
		},
		{
			name: "a revocation the verifier recorded in status revokes the key, its spec unchanged",
			key: issuedKey(func(k *keywardenv1alpha1.APIKey) {
				k.Status.Revocation = &keywardenv1alpha1.Revocation{Reason: keywardenv1alpha1.ReasonRotatedKeyReused, Message: "key kw_bbbbb..., rotated out, was used"}
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseRevoked, reason: keywardenv1alpha1.ReasonRotatedKeyReused, stalled: true, secret: SecretDelete,
				events: []string{keywardenv1alpha1.EventKeyRevoked}},
		},
		{
			name: "a key the verifier revoked stays stalled while its spec declares it active",
			key: issuedKey(func(k *keywardenv1alpha1.APIKey) {
				k.Status.Phase = keywardenv1alpha1.PhaseRevoked
				k.Status.Revocation = &keywardenv1alpha1.Revocation{Reason: keywardenv1alpha1.ReasonKeyReported, Message: "reported as leaked"}
			}),
			want: want{phase: keywardenv1alpha1.PhaseRevoked, reason: keywardenv1alpha1.ReasonKeyReported, stalled: true},
		},
		{
			name: "a key the verifier revoked, its revocation acknowledged in the spec, has reached its declared state",
			key: issuedKey(func(k *keywardenv1alpha1.APIKey) {
				k.Spec.Revoked = true
				k.Status.Phase = keywardenv1alpha1.PhaseRevoked
				k.Status.Revocation = &keywardenv1alpha1.Revocation{Reason: keywardenv1alpha1.ReasonKeyReported, Message: "reported as leaked"}
			}),
			want: want{phase: keywardenv1alpha1.PhaseRevoked, reason: keywardenv1alpha1.ReasonRevoked},
		},
		{
			name:    "a revoked key leaves a foreign Secret alone",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.Revoked = true }),
			observe: []func(*Observed){withSecret(foreignSecret)},
			want: want{phase: keywardenv1alpha1.PhaseRevoked, reason: keywardenv1alpha1.ReasonRevoked,
				events: []string{keywardenv1alpha1.EventKeyRevoked}},
		},
		{
			name:    "an Expired key stays Expired, and a Secret created since is deleted",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseExpired }),
			observe: []func(*Observed){withSecret(ownSecret)},
			want:    want{phase: keywardenv1alpha1.PhaseExpired, reason: keywardenv1alpha1.ReasonExpired, stalled: true, secret: SecretDelete},
		},
		{
			name: "a Revoked key stays Revoked",
			key:  issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseRevoked }),
			want: want{phase: keywardenv1alpha1.PhaseRevoked, reason: keywardenv1alpha1.ReasonRevoked},
		},

		// An issued key's grant.
		{
			name:    "a new owner with room is granted, taking a place under that owner",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.Owner = "other" }),
			observe: []func(*Observed){withSecret(ownSecret), peers("other", 10)},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventGrantChanged},
				reserve: &Reservation{Owner: "other", Move: true},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.Owner != "other" {
						t.Errorf("granted owner %q, want other", st.Owner)
					}
				}},
		},
		{
			name:    "a new owner whose keys were not read is asked for",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.Owner = "other" }),
			observe: []func(*Observed){withSecret(ownSecret)},
			want:    want{needOwner: "other"},
		},
		{
			name:    "a new owner without room is refused: the key stays Ready with its grant, looked at again",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.Owner = "other" }),
			observe: []func(*Observed){withSecret(ownSecret), peers("other", 1, peer("p", true))},
			want: want{phase: keywardenv1alpha1.PhaseActive, refused: keywardenv1alpha1.ReasonActiveKeyLimit, requeue: LimitRecheck,
				events: []string{keywardenv1alpha1.EventGrantChangeRefused},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.Owner != "team" {
						t.Errorf("granted owner %q, want team kept", st.Owner)
					}
				}},
		},
		{
			name:    "a refusal reported before gets no second event",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.Owner = "other" }, stalledOn(keywardenv1alpha1.ReasonActiveKeyLimit, limitMsg)),
			observe: []func(*Observed){withSecret(ownSecret), peers("other", 1, peer("p", true))},
			want:    want{phase: keywardenv1alpha1.PhaseActive, refused: keywardenv1alpha1.ReasonActiveKeyLimit, requeue: LimitRecheck},
		},
		{
			name: "an issued key its class no longer allows keeps its grant and is not ClassCompliant",
			key:  issuedKey(), observe: []func(*Observed){withSecret(ownSecret), func(o *Observed) {
				o.Policy.Roles = map[string][]keywardenv1alpha1.Scope{"admin": nil}
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				c := apimeta.FindStatusCondition(st.Conditions, keywardenv1alpha1.ConditionClassCompliant)
				if c == nil || c.Status != metav1.ConditionFalse || c.Reason != keywardenv1alpha1.ReasonRoleNotAllowed {
					t.Errorf("ClassCompliant %+v, want False RoleNotAllowed", c)
				}
			}},
		},

		// A key issued before grants were recorded (no status.owner):
		// its first grant is its spec judged against its class.
		{
			name: "a key issued before grants gets the grant its class allows, with no event",
			key:  issuedKey(beforeGrants), observe: []func(*Observed){withSecret(ownSecret), readerClass},
			want: want{phase: keywardenv1alpha1.PhaseActive, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if st.Owner != "team" || st.Role != "reader" {
					t.Errorf("grant %s/%s, want team/reader", st.Owner, st.Role)
				}
			}},
		},
		{
			name:    "a key issued before grants whose spec asks a role its class refuses is granted none",
			key:     issuedKey(beforeGrants, func(k *keywardenv1alpha1.APIKey) { k.Spec.Role = "admin" }),
			observe: []func(*Observed){withSecret(ownSecret), readerClass},
			want: want{phase: keywardenv1alpha1.PhaseActive, refused: keywardenv1alpha1.ReasonRoleNotAllowed,
				events: []string{keywardenv1alpha1.EventGrantChangeRefused}, status: ungranted},
		},
		{
			name: "a key issued before grants that never expires is held to its class's maximum from the upgrade, and told",
			key:  issuedKey(beforeGrants),
			observe: []func(*Observed){withSecret(ownSecret), readerClass, func(o *Observed) {
				o.Policy.MaxLifetime = 24 * time.Hour
				o.GrantClass = &o.Policy
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventGrantChanged},
				requeue: 24*time.Hour - 500*time.Millisecond + expirySlack,
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					// Never sooner than the class's warning (its maximum,
					// here) from the upgrade.
					if want := now.Add(24 * time.Hour).Truncate(time.Second); st.ExpiresAt == nil || !st.ExpiresAt.Time.Equal(want) {
						t.Errorf("expiry %v, want %v", st.ExpiresAt, want)
					}
				}},
		},
		{
			name: "a key granted no role stays so, told once",
			key: issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.Role, k.Status.Role = "admin", "" },
				stalledOn(keywardenv1alpha1.ReasonRoleNotAllowed, `The key is granted no role, and verifies no request, until its spec asks for what its class allows: role "admin" is not allowed by APIKeyClass "c"; allowed roles: reader`)),
			observe: []func(*Observed){withSecret(ownSecret), readerClass},
			want:    want{phase: keywardenv1alpha1.PhaseActive, refused: keywardenv1alpha1.ReasonRoleNotAllowed, status: ungranted},
		},
		{
			name:    "a key granted no role is granted its role once its spec fits",
			key:     issuedKey(func(k *keywardenv1alpha1.APIKey) { k.Status.Role = "" }),
			observe: []func(*Observed){withSecret(ownSecret), readerClass},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventGrantChanged},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.Role != "reader" {
						t.Errorf("role %q, want reader", st.Role)
					}
				}},
		},

		// Warning before expiry.
		{
			name: "an issued key within its class's expiry warning is ExpiringSoon, still Ready, told once",
			key: issuedKey(issuedFor30Days, func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = &metav1.Time{Time: now.Add(keywardenv1alpha1.DefaultExpiryWarning - time.Hour)}
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyExpiringSoon},
				requeue: keywardenv1alpha1.DefaultExpiryWarning - time.Hour + expirySlack, status: expiringSoon(true)},
		},
		{
			name: "a key already ExpiringSoon is not told again",
			key: issuedKey(issuedFor30Days, func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = &metav1.Time{Time: now.Add(time.Hour)}
				apimeta.SetStatusCondition(&k.Status.Conditions, metav1.Condition{Type: keywardenv1alpha1.ConditionExpiringSoon, Status: metav1.ConditionTrue, Reason: keywardenv1alpha1.ReasonExpiringSoon})
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want:    want{phase: keywardenv1alpha1.PhaseActive, requeue: time.Hour + expirySlack, status: expiringSoon(true)},
		},
		{
			name: "a key before the window wakes as it enters it",
			key: issuedKey(issuedFor30Days, func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = &metav1.Time{Time: now.Add(keywardenv1alpha1.DefaultExpiryWarning + time.Hour)}
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want:    want{phase: keywardenv1alpha1.PhaseActive, requeue: time.Hour, status: expiringSoon(false)},
		},
		{
			name: "a class that turns the warning off",
			key: issuedKey(issuedFor30Days, func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = &metav1.Time{Time: now.Add(time.Hour)}
				apimeta.SetStatusCondition(&k.Status.Conditions, metav1.Condition{Type: keywardenv1alpha1.ConditionExpiringSoon, Status: metav1.ConditionTrue, Reason: keywardenv1alpha1.ReasonExpiringSoon})
			}),
			observe: []func(*Observed){withSecret(ownSecret), func(o *Observed) { o.Policy.ExpiryWarning = 0 }},
			want:    want{phase: keywardenv1alpha1.PhaseActive, requeue: time.Hour + expirySlack, status: expiringSoon(false)},
		},
		{
			name: "an expired key is no longer ExpiringSoon",
			key: issuedKey(issuedFor30Days, func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = &metav1.Time{Time: now.Add(-time.Second)}
				apimeta.SetStatusCondition(&k.Status.Conditions, metav1.Condition{Type: keywardenv1alpha1.ConditionExpiringSoon, Status: metav1.ConditionTrue, Reason: keywardenv1alpha1.ReasonExpiringSoon})
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseExpired, reason: keywardenv1alpha1.ReasonExpired, stalled: true, secret: SecretDelete,
				events: []string{keywardenv1alpha1.EventKeyExpired}, status: expiringSoon(false)},
		},
		{
			name: "a key issued for less than the window is not warned",
			key: issuedKey(func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = &metav1.Time{Time: now.Add(time.Hour)}
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want:    want{phase: keywardenv1alpha1.PhaseActive, requeue: time.Hour + expirySlack, status: expiringSoon(false)},
		},
		{
			name:    "a key not issued yet is not warned",
			key:     newKey(func(k *keywardenv1alpha1.APIKey) { k.Spec.ExpiresAt = &metav1.Time{Time: now.Add(time.Hour)} }),
			observe: []func(*Observed){peers("team", 10)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonIssuing, progressing: true,
				secret: SecretIssue, reserve: &Reservation{Owner: "team"}, requeue: time.Hour + expirySlack, status: expiringSoon(false)},
		},

		// Rotation.
		{
			name: "a new rotation request rotates an Active key: the next key is recorded before the Secret is written",
			key:  issuedKey(rotation(0, nil, "r1")), observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRotate, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if st.Rotation == nil || st.Rotation.Request != "r1" || st.KeyHash != hashA {
					t.Errorf("rotation %+v hash %q, want the request handled and the current key kept", st.Rotation, st.KeyHash)
				}
			}},
		},
		{
			name: "the same request applied again does nothing",
			key:  issuedKey(rotation(0, nil, "r1"), handled("r1")), observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseActive},
		},
		{
			name: "the request a key is created with asks for no rotation",
			key:  newKey(rotation(0, nil, "r0")), observe: []func(*Observed){peers("team", 10), func(o *Observed) {
				o.Created = &Created{Hash: hashB, Prefix: "kw_bbbbb", UID: "s2"}
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyIssued}, reserve: &Reservation{Owner: "team"},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.Rotation == nil || st.Rotation.Request != "r0" {
						t.Errorf("rotation %+v, want the request handled at issuance", st.Rotation)
					}
				}},
		},
		{
			name: "a schedule not due yet wakes the key when it is",
			key:  issuedKey(rotation(2*time.Hour, nil, "")), observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseActive, requeue: now.Add(-time.Hour).Truncate(time.Second).Add(2 * time.Hour).Sub(now), routine: true},
		},
		{
			name: "an expiry before the schedule wakes the key first, not as routine work",
			key: issuedKey(rotation(2*time.Hour, nil, ""), func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = &metav1.Time{Time: now.Add(30 * time.Minute).Truncate(time.Second)}
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want:    want{phase: keywardenv1alpha1.PhaseActive, requeue: now.Add(30*time.Minute).Truncate(time.Second).Sub(now) + expirySlack},
		},
		{
			name: "a schedule that has come rotates the key",
			key:  issuedKey(rotation(time.Hour, nil, "")), observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRotate},
		},
		{
			name: "a schedule that has come waits for the moment the controller's pace gives it",
			key:  issuedKey(rotation(time.Hour, nil, "")),
			observe: []func(*Observed){withSecret(ownSecret), func(o *Observed) {
				o.Pace = func() (bool, time.Duration) { return false, 3 * time.Second }
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, requeue: 3 * time.Second, routine: true},
		},
		{
			name: "a rotation asked for in the spec is not paced",
			key:  issuedKey(rotation(time.Hour, nil, "now")),
			observe: []func(*Observed){withSecret(ownSecret), func(o *Observed) {
				o.Pace = func() (bool, time.Duration) { return false, time.Second } // it would hold a paced rotation
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRotate},
		},
		{
			name: "a schedule counts from the last rotation",
			key: issuedKey(rotation(time.Hour, nil, ""), func(k *keywardenv1alpha1.APIKey) {
				k.Status.Rotation = &keywardenv1alpha1.RotationStatus{LastRotatedAt: &metav1.Time{Time: now.Add(-time.Minute).Truncate(time.Second)}}
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want:    want{phase: keywardenv1alpha1.PhaseActive, requeue: now.Add(-time.Minute).Truncate(time.Second).Add(time.Hour).Sub(now), routine: true},
		},
		{
			name:    "the Secret holds the next key: the rotation completes, the replaced key valid for its grace",
			key:     issuedKey(rotation(0, nil, "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyRotated}, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				r := st.Rotation
				if st.KeyHash != hashB || st.KeyPrefix != "kw_bbbbb" || r.Next != nil || !r.LastRotatedAt.Equal(stamp) {
					t.Errorf("hash %q next %+v last %v, want the next key current at %v", st.KeyHash, r.Next, r.LastRotatedAt, stamp)
				}
				if len(r.Previous) != 1 || r.Previous[0].KeyHash != hashA || !r.Previous[0].ValidUntil.Equal(&metav1.Time{Time: stamp.Add(keywardenv1alpha1.DefaultGracePeriod)}) {
					t.Errorf("previous %+v, want the replaced key valid for the default grace", r.Previous)
				}
			}},
		},
		{
			name: "a grace period never runs past the key's expiry",
			key: issuedKey(rotation(0, nil, "r1"), rotating, func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = inAnHour.DeepCopy()
			}),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyRotated}, requeue: inAnHour.Sub(now) + expirySlack,
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if p := st.Rotation.Previous; len(p) != 1 || !p[0].ValidUntil.Equal(&inAnHour) {
						t.Errorf("previous %+v, want valid until the expiry %v", p, inAnHour)
					}
				}},
		},
		{
			name:    "a grace period of zero ends the replaced key at once",
			key:     issuedKey(rotation(0, new(time.Duration(0)), "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyRotated}, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if p := st.Rotation.Previous; len(p) != 1 || !p[0].ValidUntil.Equal(stamp) {
					t.Errorf("previous %+v, want valid until %v", p, stamp)
				}
			}},
		},
		{
			name: "status keeps the last rotated-out keys only",
			key: issuedKey(rotation(0, nil, "r1"), rotating, func(k *keywardenv1alpha1.APIKey) {
				for range MaxPreviousKeys {
					k.Status.Rotation.Previous = append(k.Status.Rotation.Previous, keywardenv1alpha1.PreviousKey{RecordedKey: keywardenv1alpha1.RecordedKey{KeyHash: "sha256:old"}})
				}
			}),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"})},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyRotated}, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if p := st.Rotation.Previous; len(p) != MaxPreviousKeys || p[0].KeyHash != hashA {
					t.Errorf("%d previous keys, the first %q; want %d, the newest first", len(p), p[0].KeyHash, MaxPreviousKeys)
				}
			}},
		},
		{
			name:    "a next key that never reached the Secret is replaced by another",
			key:     issuedKey(rotation(0, nil, "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashA, Prefix: "kw_aaaaa"})},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRotate, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if st.Rotation.Next != nil || st.KeyHash != hashA {
					t.Errorf("next %+v hash %q, want the lost next key dropped and the current key kept", st.Rotation.Next, st.KeyHash)
				}
			}},
		},
		{
			name:    "the held next key is written into the Secret once its status is read back",
			key:     issuedKey(rotation(0, nil, "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashA, Prefix: "kw_aaaaa"}), func(o *Observed) { o.NextHeld = true }},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretWriteNext, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if st.Rotation.Next == nil || st.Rotation.Next.KeyHash != hashB || st.KeyHash != hashA {
					t.Errorf("next %+v hash %q, want the next key kept and the current key current", st.Rotation.Next, st.KeyHash)
				}
			}},
		},
		{
			name: "a Secret deleted during a rotation is a lost Secret: the current key is invalid, the next one dropped",
			key:  issuedKey(rotation(0, nil, "r1"), rotating), observe: []func(*Observed){func(o *Observed) { o.NextHeld = true }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonReissuing, progressing: true, requeue: time.Millisecond,
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.KeyHash != "" || st.Rotation.Next != nil || st.KeySerial != 4 {
						t.Errorf("hash %q next %+v serial %d, want both keys forgotten and serial 4", st.KeyHash, st.Rotation.Next, st.KeySerial)
					}
				}},
		},
		{
			name:    "a Secret replaced to take the next key: the rotation completes with a warning to restart its pods",
			key:     issuedKey(rotation(0, nil, "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s7", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"}), func(o *Observed) { o.SecretReplaced = true }},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventSecretReplaced, keywardenv1alpha1.EventKeyRotated},
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.SecretRef.UID != "s7" || st.KeyHash != hashB {
						t.Errorf("secretRef %+v hash %q, want the new Secret and the next key recorded", st.SecretRef, st.KeyHash)
					}
				}},
		},
		{
			name:    "a Secret holding neither key during a rotation is replaced",
			key:     issuedKey(rotation(0, nil, "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: "sha256:" + strings.Repeat("c", 64)})},
			want:    want{phase: keywardenv1alpha1.PhaseActive, secret: SecretReplace},
		},
		{
			name: "and then the key is reissued, the next key dropped",
			key:  issuedKey(rotation(0, nil, "r1"), rotating), observe: []func(*Observed){func(o *Observed) { o.TamperedDeleted = true }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonReissuing, progressing: true, requeue: time.Millisecond,
				events: []string{keywardenv1alpha1.EventSecretTampered}, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.Rotation.Next != nil {
						t.Errorf("next %+v, want dropped", st.Rotation.Next)
					}
				}},
		},
		{
			name: "a foreign Secret during a rotation stalls the key, the next key dropped",
			key:  issuedKey(rotation(0, nil, "r1"), rotating), observe: []func(*Observed){withSecret(foreignSecret)},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonSecretConflict, stalled: true,
				events: []string{keywardenv1alpha1.EventSecretConflict}, requeue: ConflictRecheck,
				status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
					if st.Rotation.Next != nil {
						t.Errorf("next %+v, want dropped", st.Rotation.Next)
					}
				}},
		},
		{
			name: "a class's schedule rotates a key that sets none",
			key:  issuedKey(), observe: []func(*Observed){withSecret(ownSecret), func(o *Observed) { o.Policy.RotationEvery = time.Hour }},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRotate},
		},
		{
			name: "a class that requires rotation holds a longer schedule to its maximum",
			key:  issuedKey(rotation(100*time.Hour, nil, "")), observe: []func(*Observed){withSecret(ownSecret), func(o *Observed) { o.Policy.MaxRotationEvery = time.Hour }},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRotate},
		},
		{
			name: "a class's maximum grace bounds the grace of a rotation",
			key:  issuedKey(rotation(0, new(48*time.Hour), "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"}), func(o *Observed) {
				o.Policy.MaxGracePeriod = time.Hour
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyRotated}, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if p := st.Rotation.Previous; len(p) != 1 || !p[0].ValidUntil.Equal(&metav1.Time{Time: stamp.Add(time.Hour)}) {
					t.Errorf("previous %+v, want valid for the class's maximum of an hour", p)
				}
			}},
		},
		{
			name: "a key whose class does not resolve rotates with the default grace",
			key:  issuedKey(rotation(0, nil, "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"}), func(o *Observed) {
				o.Policy, o.Violation = policy.Policy{}, &policy.Violation{Reason: keywardenv1alpha1.ReasonClassNotFound, Message: "m"}
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyRotated}, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if p := st.Rotation.Previous; len(p) != 1 || !p[0].ValidUntil.Equal(&metav1.Time{Time: stamp.Add(keywardenv1alpha1.DefaultGracePeriod)}) {
					t.Errorf("previous %+v, want valid for the default grace", p)
				}
			}},
		},
		// A key follows the rotation rules of the class it is granted
		// under, whatever its spec now names.
		{
			name: "a key pointed at a missing class keeps its granted class's maximum grace",
			key:  issuedKey(grantedGold("missing"), rotation(0, new(24*time.Hour), "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"}),
				classGone(goldClass(goldRotation))},
			want: want{phase: keywardenv1alpha1.PhaseActive, refused: keywardenv1alpha1.ReasonClassNotFound, requeue: nextHour, routine: true,
				events: []string{keywardenv1alpha1.EventGrantChangeRefused, keywardenv1alpha1.EventKeyRotated}, status: graceUntil(time.Minute, goldRotation)},
		},
		{
			name:    "a key pointed at a missing class keeps its granted class's required schedule",
			key:     issuedKey(grantedGold("missing")),
			observe: []func(*Observed){withSecret(ownSecret), classGone(goldClass(goldRotation))},
			want: want{phase: keywardenv1alpha1.PhaseActive, refused: keywardenv1alpha1.ReasonClassNotFound,
				events: []string{keywardenv1alpha1.EventGrantChangeRefused}, secret: SecretRotate},
		},
		{
			name: "a key pointed at a looser class that refuses it keeps its granted class's rules",
			key:  issuedKey(grantedGold("loose"), rotation(0, new(24*time.Hour), "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"}), func(o *Observed) {
				o.Policy = policy.FromClass(&keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "loose"},
					Spec: keywardenv1alpha1.APIKeyClassSpec{Roles: []keywardenv1alpha1.ClassRole{{Name: "writer"}}}})
				o.GrantClass = goldClass(goldRotation)
			}},
			want: want{phase: keywardenv1alpha1.PhaseActive, refused: keywardenv1alpha1.ReasonRoleNotAllowed, requeue: nextHour, routine: true,
				events: []string{keywardenv1alpha1.EventGrantChangeRefused, keywardenv1alpha1.EventKeyRotated}, status: graceUntil(time.Minute, goldRotation)},
		},
		{
			name: "a key whose class was deleted keeps the rules its status recorded",
			key: issuedKey(grantedGold(""), rotation(0, new(24*time.Hour), "r1"), rotating, func(k *keywardenv1alpha1.APIKey) {
				k.Status.ClassRotation = goldRotation.DeepCopy()
			}),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"}), classGone(nil)},
			want: want{phase: keywardenv1alpha1.PhaseActive, requeue: nextHour, routine: true,
				events: []string{keywardenv1alpha1.EventKeyRotated}, status: graceUntil(time.Minute, goldRotation)},
		},
		{
			name:    "a key whose class was deleted before its rules were recorded rotates by the built-in rules",
			key:     issuedKey(grantedGold(""), rotation(0, nil, "r1"), rotating),
			observe: []func(*Observed){withSecret(&Secret{Name: "k", UID: "s1", ResourceVersion: "5", Owned: true, Read: true, Hash: hashB, Prefix: "kw_bbbbb"}), classGone(nil)},
			want:    want{phase: keywardenv1alpha1.PhaseActive, events: []string{keywardenv1alpha1.EventKeyRotated}, status: graceUntil(keywardenv1alpha1.DefaultGracePeriod, nil)},
		},
		{
			name:    "a key's status records its class's rotation rules as they stand",
			key:     issuedKey(grantedGold("")),
			observe: []func(*Observed){withSecret(ownSecret), func(o *Observed) { o.Policy, o.GrantClass = *goldClass(goldRotation), goldClass(goldRotation) }},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRotate, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if !equality.Semantic.DeepEqual(st.ClassRotation, goldRotation) {
					t.Errorf("classRotation %+v, want the class's", st.ClassRotation)
				}
			}},
		},
		{
			name: "a class that drops its rotation rules drops them from its keys' status",
			key: issuedKey(grantedGold(""), func(k *keywardenv1alpha1.APIKey) {
				k.Status.ClassRotation = goldRotation.DeepCopy()
			}),
			observe: []func(*Observed){withSecret(ownSecret), func(o *Observed) { o.Policy, o.GrantClass = *goldClass(nil), goldClass(nil) }},
			want: want{phase: keywardenv1alpha1.PhaseActive, status: func(t *testing.T, st *keywardenv1alpha1.APIKeyStatus) {
				if st.ClassRotation != nil {
					t.Errorf("classRotation %+v, want none", st.ClassRotation)
				}
			}},
		},
		{
			name: "a new key rotating less often than its class requires is not issued",
			key:  newKey(rotation(100*time.Hour, nil, "")), observe: []func(*Observed){peers("team", 10), func(o *Observed) { o.Policy.MaxRotationEvery = time.Hour }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonRotationRequired, stalled: true,
				events: []string{keywardenv1alpha1.EventPolicyViolation}},
		},
		{
			name: "a new key asking for more grace than its class allows is not issued",
			key:  newKey(rotation(0, new(48*time.Hour), "")), observe: []func(*Observed){peers("team", 10), func(o *Observed) { o.Policy.MaxGracePeriod = time.Hour }},
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonGracePeriodExceedsMax, stalled: true,
				events: []string{keywardenv1alpha1.EventPolicyViolation}},
		},
		{
			name: "a rotation takes no place under the owner's limit",
			key:  issuedKey(rotation(0, nil, "r1")), observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseActive, secret: SecretRotate},
		},
		{
			name: "an expired key is not rotated",
			key: issuedKey(rotation(0, nil, "r1"), func(k *keywardenv1alpha1.APIKey) {
				k.Status.ExpiresAt = &metav1.Time{Time: now.Add(-time.Second)}
			}),
			observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseExpired, reason: keywardenv1alpha1.ReasonExpired, stalled: true, secret: SecretDelete,
				events: []string{keywardenv1alpha1.EventKeyExpired}},
		},
		{
			name:    "a revoked key is not rotated",
			key:     issuedKey(rotation(0, nil, "r1"), func(k *keywardenv1alpha1.APIKey) { k.Spec.Revoked = true }),
			observe: []func(*Observed){withSecret(ownSecret)},
			want: want{phase: keywardenv1alpha1.PhaseRevoked, reason: keywardenv1alpha1.ReasonRevoked, secret: SecretDelete,
				events: []string{keywardenv1alpha1.EventKeyRevoked}},
		},
		{
			name: "a key being reissued is issued, not rotated",
			key:  issuedKey(rotation(0, nil, "r1"), reissuing),
			want: want{phase: keywardenv1alpha1.PhasePending, reason: keywardenv1alpha1.ReasonReissuing, progressing: true, secret: SecretIssue},
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			o := &Observed{Key: row.key, Now: now, Policy: policy.BuiltIn(), Owners: map[string]*OwnerKeys{}}
			for _, f := range row.observe {
				f(o)
			}
			before := row.key.DeepCopy()
			d := Decide(o)
			if !equality.Semantic.DeepEqual(before, row.key) {
				t.Fatal("Decide changed the observed key")
			}
			w := row.want
			if d.NeedOwner != w.needOwner {
				t.Fatalf("NeedOwner %q, want %q", d.NeedOwner, w.needOwner)
			}
			if w.needOwner != "" {
				return
			}
			out := d.Outcome
			if out.Phase != w.phase || out.Reason != w.reason || out.Stalled != w.stalled || out.Progressing != w.progressing {
				t.Errorf("outcome %s/%s stalled=%v progressing=%v (%s), want %s/%s stalled=%v progressing=%v",
					out.Phase, out.Reason, out.Stalled, out.Progressing, out.Message, w.phase, w.reason, w.stalled, w.progressing)
			}
			if got := ""; out.Refused != nil || w.refused != "" {
				if out.Refused != nil {
					got = out.Refused.Reason
				}
				if got != w.refused {
					t.Errorf("refused %q, want %q", got, w.refused)
				}
			}
			if d.Secret != w.secret {
				t.Errorf("Secret action %d, want %d", d.Secret, w.secret)
			}
			var events []string
			for _, e := range d.Events {
				events = append(events, e.Reason)
			}
			if !slices.Equal(events, w.events) {
				t.Errorf("events %v, want %v", events, w.events)
			}
			if d.Hold != w.hold {
				t.Errorf("hold %v, want %v", d.Hold, w.hold)
			}
			if d.RequeueAfter != w.requeue || d.Routine != w.routine {
				t.Errorf("requeue after %v (routine %v), want %v (routine %v)", d.RequeueAfter, d.Routine, w.requeue, w.routine)
			}
			if (d.Reserve == nil) != (w.reserve == nil) || d.Reserve != nil && *d.Reserve != *w.reserve {
				t.Errorf("reserve %+v, want %+v", d.Reserve, w.reserve)
			}
			if (d.Err != nil) != w.err {
				t.Errorf("err %v, want err %v", d.Err, w.err)
			}
			if w.status != nil {
				w.status(t, &d.Status)
			}
		})
	}
}
