package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/policy"
)

// Wake-ups a decision asks for when nothing it watches tells it of a
// change.
const (
	// LimitRecheck: a refusal that no event may end (room under a new
	// owner's limit, or a namespace whose labels are not watched).
	LimitRecheck = time.Minute
	// AdmissionRecheck: a key refused while one of its owner's keys was
	// still being issued, in case that issuance fails.
	AdmissionRecheck = 2 * time.Second
	// ConflictRecheck: a key stalled on a foreign Secret, which is not
	// watched.
	ConflictRecheck = time.Minute
	// MaxPreviousKeys is how many rotated-out keys status keeps, so that
	// their use is refused as ROTATED rather than unknown.
	MaxPreviousKeys = 8
	// expirySlack puts the pass that expires a key a little past the
	// moment, so that it sees the key expired even if clocks disagree by
	// a hair.
	expirySlack = 10 * time.Millisecond
	// RestoreWait is how long a key created over a Secret that holds a
	// key and has no controller waits for the status a restore writes
	// after the create, before the Secret is reported as a conflict.
	RestoreWait = 10 * time.Second
	// RestoreReissueAfter is how long after its creation a key whose
	// restored Secret holds a key its status does not record waits for
	// that status (written back by hand, say) before a new key is issued
	// into the Secret.
	RestoreReissueAfter = 10 * time.Minute
)

// Observed is everything one reconcile pass knows of a key and its world.
// The controller reads it before deciding and adds to it what its own
// actions find (the Secret it created, the one it deleted); Decide reads
// nothing else.
type Observed struct {
	// Key is the APIKey as read. Decide never changes it.
	Key *keywardenv1alpha1.APIKey
	// Now is the time of the pass.
	Now time.Time
	// Policy is the class policy that applies to the key, and Violation
	// why none does (no such class, an ambiguous default, a
	// namespaceSelector that refuses the key's namespace). Neither is read
	// for an Expired or Revoked key, or one revoked in its spec.
	Policy    policy.Policy
	Violation *policy.Violation
	// Pace, when set, says whether a scheduled rotation that has come may
	// start now, and otherwise how long until it may: the controller
	// paces them. Rotations asked for in the spec are not paced.
	Pace func() (bool, time.Duration)
	// GrantClass is the policy of the class an issued key is granted
	// under (status.className), read whether or not it admits the key's
	// namespace; nil when there is no such class, or the key is not
	// issued or has ended.
	GrantClass *policy.Policy
	// DefaultClass is the one default class's name, if any: the class a
	// key naming none counts under.
	DefaultClass string
	// NamespacesUnwatched is set when namespace labels are not watched
	// (the manager watches only some namespaces), so that a namespace a
	// class refuses is looked at again by time.
	NamespacesUnwatched bool
	// Secret is the Secret at the key's Secret name, nil when there is
	// none.
	Secret *Secret
	// Owners holds what the active-key limit needs of each owner's keys,
	// read under that owner's lock. A decision that needs an owner it
	// lacks asks for it (Decision.NeedOwner).
	Owners map[string]*OwnerKeys

	// Created is the Secret this pass created for a new key.
	Created *Created
	// CreateRaced is set when the create found a Secret of the name; the
	// Secret is then read again from the API server.
	CreateRaced bool
	// CreateRefused is the API server's refusal of the new Secret as
	// invalid, a message that quotes no key.
	CreateRefused string
	// TamperedDeleted is set once this pass deleted an owned Secret whose
	// value Keywarden did not issue for this key, or (RestoreReplaced) a
	// restored Secret whose key no status came to record.
	TamperedDeleted, RestoreReplaced bool
	// SecretReplaced is set once this pass replaced the Secret (deleted
	// and created it again) to write a rotation's next key: it could not
	// take it in place.
	SecretReplaced bool
	// NextHeld is set when this process holds the value of the next key
	// status.rotation.next records (it generated it, and has not
	// restarted since).
	NextHeld bool
}

// Secret is what a pass reads of the Secret at a key's Secret name.
type Secret struct {
	Name            string
	UID             types.UID
	ResourceVersion string
	// Owned is set when this APIKey is the Secret's controller.
	Owned bool
	// Read is set when the Secret's data was read: for an owned Secret
	// that is not the one status records (or when none is recorded).
	Read bool
	// Gone is set when the API server no longer had the Secret that the
	// cache listed.
	Gone bool
	// Controlled is set when the Secret has a controller, this APIKey or
	// another object.
	Controlled bool
	// Unlabelled is set when the Secret, read from the API server, lacks
	// the label that keeps it in the controller's cache.
	Unlabelled bool
	// Deleting is set while the Secret is being deleted.
	Deleting bool
	// Hash and Prefix are those of the well-formed key the Secret holds,
	// empty when it holds none.
	Hash, Prefix string
	// Sealed is set when the Secret's seal proves that Keywarden issued
	// its key for this APIKey under the key's current serial.
	Sealed bool
	// Restored is set when the Secret, read, is of Keywarden's key type
	// and labelled by Keywarden for an APIKey of this name: what a
	// restore of this key's Secret brings back (without its owner).
	Restored bool
	// Created is when the Secret was created.
	Created time.Time
}

// Created is a Secret a pass created, and the key it holds.
type Created struct {
	Hash, Prefix    string
	UID             types.UID
	ResourceVersion string
}

// OwnerKeys is what the active-key limit needs of an owner: its keys in
// the namespace, from the cache, with the keys this process admitted that
// the cache does not show issued yet (by UID, true while being issued) and
// those it reassigned to the owner.
type OwnerKeys struct {
	Peers    []keywardenv1alpha1.APIKey
	Admitted map[types.UID]bool
	Moved    []types.UID
}

// SecretAction is what a decision does to the key's Secret.
type SecretAction uint8

const (
	// SecretKeep leaves the Secret as it is.
	SecretKeep SecretAction = iota
	// SecretDelete deletes the observed Secret (the decision asks for it
	// only when this APIKey owns it).
	SecretDelete
	// SecretReplace deletes the observed Secret because Keywarden did not
	// issue the key it holds; the pass then decides again with
	// TamperedDeleted set.
	SecretReplace
	// SecretIssue generates a key and creates its Secret; the pass then
	// decides again with what the create found.
	SecretIssue
	// SecretRotate generates the next key, records it in
	// status.rotation.next and holds its value in memory; nothing is
	// written into the Secret in that pass.
	SecretRotate
	// SecretWriteNext writes the held next key into the Secret, in place,
	// in a pass that read back the status recording it: the verifiers,
	// which watch the same objects, know the key before a workload can
	// read it. The pass then decides again with the Secret written.
	SecretWriteNext
	// SecretAdopt takes a Secret that no APIKey controls and that holds
	// the key status records (restored from a backup, which drops owner
	// references): this APIKey becomes its controller, with its labels and
	// a seal of its own. Only a writer of status can record a key's hash,
	// so only it can have a Secret adopted.
	SecretAdopt
	// SecretRelabel puts back the labels of an owned Secret holding the
	// issued key that someone removed: without them it leaves the
	// controller's cache, and a change made to it in place would go
	// unseen.
	SecretRelabel
)

// Event is an Event to emit once the status that reports it is written.
type Event struct {
	Type, Reason, Action, Note string
}

// Reservation is a place under an owner's active-key limit that the
// decision takes: for a new key, or (Move) for an issued key reassigned to
// the owner or joining another class.
type Reservation struct {
	Owner string
	Move  bool
}

// Decision is what a pass does: the status to write (the Ready,
// Reconciling and Stalled conditions follow from Outcome when it is
// written), what to do to the Secret, the events, and when to look again.
type Decision struct {
	Status  keywardenv1alpha1.APIKeyStatus
	Outcome Outcome
	Secret  SecretAction
	Events  []Event
	// RequeueAfter is the earliest wake-up any rule asked for; 0 for none.
	RequeueAfter time.Duration
	// Routine is set when that wake-up is for routine work (a scheduled
	// rotation): it waits behind issuance, revocation and expiry.
	Routine bool
	// Hold is set when the pass must write nothing, not even the key's
	// status: a key just created over a Secret already in place waits for
	// the status a restore writes next (Velero writes it with the
	// resourceVersion its create returned).
	Hold bool
	// NeedOwner, when set, is an owner whose keys the decision needs: the
	// pass reads them into Observed.Owners and decides again. Nothing else
	// of the decision is to be acted on.
	NeedOwner string
	// Reserve is the place under an owner's limit the decision takes.
	Reserve *Reservation
	// Err is a transient failure: the pass is retried with backoff.
	Err error

	// refused is the refused change of an issued key's spec, reported
	// when the key ends the pass Active.
	refused *Refusal
}

func (d *Decision) requeue(after time.Duration) {
	if after > 0 && (d.RequeueAfter == 0 || after <= d.RequeueAfter) {
		d.RequeueAfter, d.Routine = after, false
	}
}

// requeueRoutine asks for a wake-up for routine work.
func (d *Decision) requeueRoutine(after time.Duration) {
	if after > 0 && (d.RequeueAfter == 0 || after < d.RequeueAfter) {
		d.RequeueAfter, d.Routine = after, true
	}
}

func (d *Decision) emit(typ, reason, action, note string) {
	d.Events = append(d.Events, Event{typ, reason, action, note})
}

// Decide is the whole life of a key, for one pass: from what the pass
// observed, what the key's status becomes, what is done to its Secret,
// which events are emitted and when the key is looked at again. In order:
// a key that ended (or is revoked) stays ended and loses its Secret; an
// issued key's grant follows its spec as far as its class and its owner's
// limit allow; a key whose expiry has come expires; a key not issued yet
// must fit its class and its owner's limit; then the key is issued, or
// its Secret is kept whole.
func Decide(o *Observed) Decision {
	d := Decision{Status: *o.Key.Status.DeepCopy()}
	d.decide(o)
	if d.NeedOwner != "" {
		return d
	}
	if d.Outcome.Phase == keywardenv1alpha1.PhaseActive {
		d.Outcome.Refused = d.refused
	}
	d.warnExpiry(o)
	d.recordHistory(o)
	return d
}

// historyEvents are the Events whose transitions status.history keeps.
var historyEvents = map[string]bool{
	keywardenv1alpha1.EventKeyIssued: true, keywardenv1alpha1.EventKeyReissued: true, keywardenv1alpha1.EventKeyRotated: true,
	keywardenv1alpha1.EventGrantChanged: true, keywardenv1alpha1.EventKeyRevoked: true, keywardenv1alpha1.EventKeyExpired: true,
	keywardenv1alpha1.EventKeyReissuedAfterRestore: true,
}

// maxHistoryMessage bounds a history entry's message, as the CRD does.
const maxHistoryMessage = 1024

// recordHistory adds the pass's transitions to status.history, in the
// same status write as the transitions themselves, keeping the last
// MaxHistory.
func (d *Decision) recordHistory(o *Observed) {
	for _, e := range d.Events {
		if !historyEvents[e.Reason] {
			continue
		}
		msg := e.Note
		if len(msg) > maxHistoryMessage {
			msg = strings.ToValidUTF8(msg[:maxHistoryMessage-len("…")], "") + "…"
		}
		d.Status.History = append(d.Status.History, keywardenv1alpha1.HistoryEntry{At: *stamp(o.Now), Event: e.Reason, Message: msg})
	}
	if n := len(d.Status.History); n > keywardenv1alpha1.MaxHistory {
		d.Status.History = slices.Clone(d.Status.History[n-keywardenv1alpha1.MaxHistory:])
	}
}

// warnExpiry marks an issued key whose expiry is within its class's
// expiryWarning ExpiringSoon, with one Warning Event as it enters the
// window, and otherwise wakes the pass that will. A key whose class does
// not resolve gets the default window; the condition goes once the key
// has ended.
func (d *Decision) warnExpiry(o *Observed) {
	st := &d.Status
	window := o.Policy.ExpiryWarning
	if o.Violation != nil {
		window = keywardenv1alpha1.DefaultExpiryWarning
	}
	if Terminal(d.Outcome.Phase) || !Issued(st) || st.ExpiresAt == nil || window <= 0 ||
		st.IssuedAt != nil && st.ExpiresAt.Sub(st.IssuedAt.Time) <= window {
		// A key issued for no longer than the window was meant to be
		// short-lived: it is not warned.
		apimeta.RemoveStatusCondition(&st.Conditions, keywardenv1alpha1.ConditionExpiringSoon)
		return
	}
	if start := st.ExpiresAt.Add(-window); o.Now.Before(start) {
		apimeta.RemoveStatusCondition(&st.Conditions, keywardenv1alpha1.ConditionExpiringSoon)
		d.requeue(start.Sub(o.Now))
		return
	}
	msg := fmt.Sprintf("The key expires at %s, within its class's expiry warning of %s; issue a replacement and move its users to it",
		st.ExpiresAt.UTC().Format(time.RFC3339), window)
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: keywardenv1alpha1.ConditionExpiringSoon, Status: metav1.ConditionTrue, ObservedGeneration: o.Key.Generation,
		Reason: keywardenv1alpha1.ReasonExpiringSoon, Message: msg,
	})
	if !HasCondition(o.Key, keywardenv1alpha1.ConditionExpiringSoon, keywardenv1alpha1.ReasonExpiringSoon) {
		d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventKeyExpiringSoon, "Expire", msg)
	}
}

func (d *Decision) decide(o *Observed) {
	k, st := o.Key, &d.Status
	switch {
	case st.Phase == keywardenv1alpha1.PhaseExpired:
		// The pass that recorded the phase deleted the Secret: one is
		// left only if it was created since.
		d.Outcome = expiredOutcome(st.ExpiresAt)
		d.deleteSecret(o)
		return
	case st.Phase == keywardenv1alpha1.PhaseRevoked:
		d.Outcome = revokedOutcome(k, st.Revocation)
		d.deleteSecret(o)
		return
	case Revoked(k):
		if st.RevokedAt == nil {
			st.RevokedAt = stamp(o.Now)
		}
		d.Outcome = revokedOutcome(k, st.Revocation)
		note := "The key was revoked and its Secret deleted"
		if r := st.Revocation; r != nil {
			note = "The key was revoked (" + r.Reason + ") and its Secret deleted: " + r.Message
		}
		d.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyRevoked, "Revoke", note)
		d.deleteSecret(o)
		return
	}
	if v := o.Violation; v != nil && v.Reason == keywardenv1alpha1.ReasonNamespaceNotAllowed && o.NamespacesUnwatched {
		d.requeue(LimitRecheck)
	}
	if Issued(st) && !d.grant(o) {
		return
	}
	if d.expire(o) {
		return
	}
	if !d.admit(o) {
		return
	}
	d.keepSecret(o)
}

// grant decides, for an issued key (also while it is reissued), whether
// its grant (recorded in status, the only thing the verifier reads)
// follows a change of its spec: each part the class and the owner's limit
// allow is granted (GrantChanged), each other part keeps its granted value
// and is reported in Stalled while the key stays Ready. It also records
// whether the grant still fits its class (ClassCompliant). A key issued
// before grants were recorded gets the grant its spec gave it then, with
// no new key. It reports false when it needs an owner's keys.
func (d *Decision) grant(o *Observed) bool {
	k, st := o.Key, &d.Status
	if st.IssuedAt == nil {
		// A hash without an issuance time (a status restored by hand):
		// count the key's lifetime from now.
		st.IssuedAt = stamp(o.Now)
	}
	self := HolderOf(k)
	var move string
	first := !st.GrantRecorded()
	base := policy.Baseline(&k.Spec, st, o.GrantClass, o.Now)
	if first && base.ExpiresAt != nil && (st.ExpiresAt == nil || base.ExpiresAt.Before(st.ExpiresAt)) {
		was := "never to expire"
		if st.ExpiresAt != nil {
			was = "to expire at " + st.ExpiresAt.UTC().Format(time.RFC3339)
		}
		d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventGrantChanged, "Grant",
			fmt.Sprintf("The key was issued before grants were recorded (%s): its first grant holds its expiry at %s, the latest its class allows",
				was, base.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	g := policy.Decide(base, &k.Spec, o.Policy, o.Violation, st.IssuedAt.Time, func(owner string) *policy.Violation {
		ok, ahead, _, known := o.room(owner, self)
		switch {
		case !known:
			if d.NeedOwner == "" {
				d.NeedOwner = owner
			}
			return &policy.Violation{Reason: keywardenv1alpha1.ReasonActiveKeyLimit}
		case ok:
			move = owner
			return nil
		}
		return o.Policy.Limit(owner, k.Namespace, ahead)
	})
	if d.NeedOwner != "" {
		return false
	}
	if move != "" {
		d.Reserve = &Reservation{Owner: move, Move: true}
	}
	g.Grant.Record(st)
	d.recordRules(o)
	if len(g.Changes) > 0 && !first {
		// (A first grant recorded whole changes nothing the verifier
		// answers.)
		d.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventGrantChanged, "Grant",
			"The key's grant changed: "+strings.Join(g.Changes, ", "))
	}
	if v := g.Refused; v != nil {
		d.refused = &Refusal{Reason: v.Reason, Message: v.Message, Ungranted: g.Grant.Role == ""}
		if d.refused.Ungranted {
			d.refused.Message = "The key is granted no role, and verifies no request, until its spec asks for what its class allows: " + v.Message
		}
		if g.Refuses(keywardenv1alpha1.ReasonActiveKeyLimit) {
			// Room under the new owner's limit sends no event to this
			// key (it counts against its granted owner): look again.
			d.requeue(LimitRecheck)
		}
		if c := apimeta.FindStatusCondition(k.Status.Conditions, keywardenv1alpha1.ConditionStalled); c == nil || c.Message != d.refused.Message {
			note := "A change of the key's spec was refused and the key keeps its grant: " + v.Message
			switch {
			case d.refused.Ungranted && first:
				note = "The key was issued before grants were recorded; its class refuses what its spec asks for, so it is granted no role and verifies no request until its spec fits: " + v.Message
			case d.refused.Ungranted:
				note = d.refused.Message
			case first:
				note = "The key was issued before grants were recorded and is granted only what its class allows: " + v.Message
			}
			d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventGrantChangeRefused, "Grant", note)
		}
	}
	v := o.Violation
	if v == nil {
		if v = o.Policy.CheckAccess(g.Grant.Role, g.Grant.Scopes); v == nil {
			v = o.Policy.CheckExpiry(g.Grant.ExpiresAt, st.IssuedAt.Time)
		}
	}
	setCompliance(st, k.Generation, v)
	return true
}

// expire expires the key when its expiry has come (Expired, Secret
// deleted) and otherwise wakes the pass that will expire it. An issued
// key's expiry is its granted one; a key not issued yet knows only an
// absolute spec.expiresAt, and one being reissued keeps its grant's.
func (d *Decision) expire(o *Observed) bool {
	st := &d.Status
	if st.IssuedAt == nil {
		st.ExpiresAt = o.Key.Spec.ExpiresAt.DeepCopy()
	}
	if !policy.Expired(st.ExpiresAt, o.Now) {
		if st.ExpiresAt != nil {
			d.requeue(st.ExpiresAt.Sub(o.Now) + expirySlack)
		}
		return false
	}
	// Declared with an expiry already past when the APIKey was created:
	// a mistake, not a key that ended. It waits, stalled, for a later
	// expiry, rather than ending before it began.
	if st.IssuedAt == nil && st.Phase != keywardenv1alpha1.PhaseRefused {
		if v := policy.ExpiryInPast(o.Key.Spec.ExpiresAt, o.Key.CreationTimestamp.Time); v != nil {
			st.ExpiresAt = nil
			d.stallOnPolicy(o, v)
			return true
		}
	}
	d.Outcome = expiredOutcome(st.ExpiresAt)
	note := "The key expired and its Secret was deleted"
	if st.KeyHash == "" {
		note = "The key expired before it was issued"
	}
	d.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyExpired, "Expire", note)
	d.deleteSecret(o)
	return true
}

// admit enforces, for a key never issued, its class (a key the class does
// not allow is Stalled with the rule's reason) and its owner's active-key
// limit (a key over it is Refused; its place is reserved when it is
// admitted). An issued key keeps its grant and its place, but one being
// reissued needs its class to resolve: its new key takes the class's
// prefix.
func (d *Decision) admit(o *Observed) bool {
	k, st := o.Key, &d.Status
	if Issued(st) {
		if st.KeyHash == "" && o.Violation != nil {
			d.stallOnPolicy(o, o.Violation)
			return false
		}
		return true
	}
	v := o.Violation
	if v == nil {
		v = o.Policy.Check(&k.Spec, o.Now)
	}
	if v != nil {
		d.stallOnPolicy(o, v)
		return false
	}
	ok, ahead, tentative, known := o.room(k.Spec.Owner, HolderOf(k))
	if !known {
		d.NeedOwner = k.Spec.Owner
		return false
	}
	if !ok {
		v := o.Policy.Limit(k.Spec.Owner, k.Namespace, ahead)
		if k.Status.Phase != keywardenv1alpha1.PhaseRefused {
			d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventKeyRefused, "Issue", v.Message)
		}
		// It waits for a place, which needs no person: one of the owner's
		// keys expiring frees it as well.
		d.Outcome = Outcome{Phase: keywardenv1alpha1.PhaseRefused, Progressing: true, Reason: v.Reason, Message: v.Message}
		if tentative {
			d.requeue(AdmissionRecheck)
		}
		return false
	}
	d.Reserve = &Reservation{Owner: k.Spec.Owner}
	return true
}

func (d *Decision) stallOnPolicy(o *Observed, v *policy.Violation) {
	if !HasCondition(o.Key, keywardenv1alpha1.ConditionStalled, v.Reason) {
		d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventPolicyViolation, "Issue", v.Message)
	}
	d.Outcome = Outcome{Phase: keywardenv1alpha1.PhasePending, Stalled: true, Reason: v.Reason, Message: v.Message}
}

// keepSecret issues the key when it has none, and keeps an issued key
// whole: its Secret must exist, belong to this APIKey and hold the key
// whose hash is in status.
func (d *Decision) keepSecret(o *Observed) {
	st, s := &d.Status, o.Secret
	if st.KeyHash == "" {
		d.issue(o)
		return
	}
	if rot := st.Rotation; rot != nil && rot.Next != nil && !o.TamperedDeleted && s != nil && s.Owned {
		d.continueRotation(o)
		return
	}
	switch {
	case o.TamperedDeleted:
		d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventSecretTampered, "Reissue",
			fmt.Sprintf("Secret %s was replaced by one that does not hold the issued key; it was deleted, the old key is invalid and a new one is issued", o.Key.SecretName()))
		d.startReissue(fmt.Sprintf("Secret %s no longer holds the issued key; the old key is invalid and a new one is being issued", o.Key.SecretName()))
		return
	case s != nil && !s.Owned && !s.Controlled && s.Read && !s.Gone && !s.Deleting && s.Hash == st.KeyHash:
		// A restore: the Secret came back without its owner, holding the
		// key status records.
		d.Secret = SecretAdopt
		st.SecretRef = secretRef(s.Name, s.UID, "")
		d.Outcome = Outcome{Phase: keywardenv1alpha1.PhaseActive}
		d.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventSecretAdopted, "Adopt",
			fmt.Sprintf("Secret %s, which no APIKey controlled, holds the issued key %s... that status records (a restore): this APIKey now controls it; the key is unchanged", s.Name, st.KeyPrefix))
		return
	case s != nil && !s.Owned:
		d.conflict(o, "")
		return
	case s == nil:
		d.startReissue(fmt.Sprintf("Secret %s was deleted; the old key is invalid and a new one is being issued", o.Key.SecretName()))
		return
	case !Recorded(st, s):
		// Another Secret object than the one recorded, or the same one
		// changed: the same key restored (from a backup, say), which is
		// the issued key whatever its seal, a change of its metadata, or
		// another value.
		switch {
		case s.Gone:
			d.Err = errors.New("Secret " + s.Name + " was deleted while it was read")
			return
		case !s.Read:
			d.Err = errors.New("Secret " + s.Name + " was not read")
			return
		case s.Hash != st.KeyHash:
			d.Secret = SecretReplace
			return
		}
		st.SecretRef = secretRef(s.Name, s.UID, s.ResourceVersion)
	}
	d.Outcome = Outcome{Phase: keywardenv1alpha1.PhaseActive}
	d.rotateWhenDue(o)
	if d.Secret == SecretKeep && s.Unlabelled {
		d.Secret = SecretRelabel
	}
}

// rotateWhenDue begins a rotation of an Active key whose spec asks for one
// (a new spec.rotation.request) or whose schedule has come, and otherwise
// wakes the pass that will.
func (d *Decision) rotateWhenDue(o *Observed) {
	st, spec := &d.Status, o.Key.Spec.Rotation
	var handled, request string
	if st.Rotation != nil {
		handled = st.Rotation.Request
	}
	if spec != nil {
		request = spec.Request
	}
	requested := request != "" && request != handled
	if every := d.rules(o).RotationSchedule(spec); !requested && every > 0 {
		base := st.IssuedAt
		if st.Rotation != nil && st.Rotation.LastRotatedAt != nil {
			base = st.Rotation.LastRotatedAt
		}
		due := base.Add(every)
		if o.Now.Before(due) {
			d.requeueRoutine(due.Sub(o.Now))
			return
		}
		if o.Pace != nil {
			if ok, wait := o.Pace(); !ok {
				d.requeueRoutine(wait)
				return
			}
		}
	} else if !requested {
		return
	}
	if st.Rotation == nil {
		st.Rotation = &keywardenv1alpha1.RotationStatus{}
	}
	st.Rotation.Request = request
	d.Secret = SecretRotate
	d.Outcome.Message = "The key is issued; a rotation is recording its next key"
}

// rules is the policy whose rotation rules apply to an issued key: the
// one of the class it is granted under (after this pass's decision on its
// grant) as that class stands, whether or not its spec now names another
// class or the class still admits the key's namespace; the rules its
// status recorded once that class is gone; the built-in defaults for a
// key granted under none.
func (d *Decision) rules(o *Observed) policy.Policy {
	if p := d.grantClass(o); p != nil {
		return *p
	}
	return policy.Recorded(d.Status.ClassName, d.Status.ClassRotation)
}

// grantClass is the policy of the class the key is granted under when
// that class exists (the built-in defaults for none), and nil when it is
// gone.
func (d *Decision) grantClass(o *Observed) *policy.Policy {
	class := d.Status.ClassName
	switch {
	case o.Violation == nil && o.Policy.ClassName == class:
		return &o.Policy
	case o.GrantClass != nil && o.GrantClass.ClassName == class:
		return o.GrantClass
	case class == "":
		p := policy.BuiltIn()
		return &p
	}
	return nil
}

// recordRules records in status the rotation rules of the class the key
// is granted under, as they stand, so that they keep applying if the
// class goes; what is recorded stays while the class is gone.
func (d *Decision) recordRules(o *Observed) {
	if p := d.grantClass(o); p != nil {
		d.Status.ClassRotation = p.Rotation.DeepCopy()
	}
}

// continueRotation follows a rotation whose next key is recorded, in a
// Secret that this APIKey owns (a Secret gone is a lost Secret, rotation or
// not): the Secret holds the next key (the rotation is complete: the key it
// replaced stays valid for its grace period), or still holds the current
// key (the next key is written into it when this process holds its value;
// otherwise the value was lost with a restart, and another next key is
// recorded), or holds anything else (treated as a tampered Secret).
func (d *Decision) continueRotation(o *Observed) {
	st, s, next := &d.Status, o.Secret, d.Status.Rotation.Next
	d.Outcome = Outcome{Phase: keywardenv1alpha1.PhaseActive}
	switch {
	case !s.Read || s.Gone:
		d.Err = errors.New("Secret " + s.Name + " was not read")
	case s.Hash == next.KeyHash:
		d.completeRotation(o)
	case s.Hash == st.KeyHash && o.NextHeld:
		d.Secret = SecretWriteNext
		d.Outcome.Message = fmt.Sprintf("The key is issued; a rotation is writing its next key into Secret %s", o.Key.SecretName())
	case s.Hash == st.KeyHash:
		st.Rotation.Next = nil
		d.Secret = SecretRotate
		d.Outcome.Message = "The key is issued; a rotation is recording its next key"
	default:
		d.Secret = SecretReplace
	}
}

// completeRotation makes the next key the current one; the key it
// replaces stays valid for the grace period, never past the key's expiry.
func (d *Decision) completeRotation(o *Observed) {
	st, s, rot := &d.Status, o.Secret, d.Status.Rotation
	grace := d.rules(o).RotationGrace(o.Key.Spec.Rotation)
	at := stamp(o.Now)
	until := metav1.NewTime(at.Add(grace))
	if st.ExpiresAt != nil && st.ExpiresAt.Before(&until) {
		until = *st.ExpiresAt.DeepCopy()
	}
	prev := keywardenv1alpha1.PreviousKey{
		RecordedKey: keywardenv1alpha1.RecordedKey{KeyHash: st.KeyHash, KeyPrefix: st.KeyPrefix},
		RotatedAt:   *at, ValidUntil: until,
	}
	rot.Previous = append([]keywardenv1alpha1.PreviousKey{prev}, rot.Previous...)
	if len(rot.Previous) > MaxPreviousKeys {
		rot.Previous = rot.Previous[:MaxPreviousKeys]
	}
	st.KeyHash, st.KeyPrefix = rot.Next.KeyHash, rot.Next.KeyPrefix
	st.SecretRef = secretRef(s.Name, s.UID, s.ResourceVersion)
	rot.Next, rot.LastRotatedAt = nil, at
	if o.SecretReplaced {
		d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventSecretReplaced, "Rotate",
			fmt.Sprintf("Secret %s could not take the new key in place (immutable, as earlier releases wrote it, or no longer labelled as Keywarden's) and was replaced; running pods that mount it keep the previous key until they restart: restart them before %s", s.Name, until.UTC().Format(time.RFC3339)))
	}
	d.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyRotated, "Rotate",
		fmt.Sprintf("Key %s... replaced key %s... in Secret %s; the previous key is valid until %s",
			st.KeyPrefix, prev.KeyPrefix, s.Name, until.UTC().Format(time.RFC3339)))
	d.rotateWhenDue(o)
}

// issue records the key of a Secret this APIKey already owns when
// Keywarden sealed it for this APIKey (a pass wrote the Secret and stopped
// before recording the hash), or has a new key generated into a new
// Secret. An owned Secret without a valid seal holds a value someone else
// chose: it is deleted and never recorded.
func (d *Decision) issue(o *Observed) {
	st, s := &d.Status, o.Secret
	// A key issued before (its issuance time is kept) and lost since is
	// being reissued.
	reissue := st.IssuedAt != nil
	d.Outcome = Outcome{
		Phase: keywardenv1alpha1.PhasePending, Progressing: true,
		Reason: keywardenv1alpha1.ReasonIssuing, Message: "The key is being issued",
	}
	if reissue {
		d.Outcome.Reason = keywardenv1alpha1.ReasonReissuing
	}
	switch {
	case o.RestoreReplaced && o.Created != nil:
		d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventKeyReissuedAfterRestore, "Issue",
			fmt.Sprintf("Secret %s held a key that this APIKey's status never recorded (restored without its status?), and none was written back within %s: a new key is issued into it, and workloads must read it again", o.Key.SecretName(), RestoreReissueAfter))
	case o.TamperedDeleted && !o.RestoreReplaced:
		d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventSecretTampered, "Issue",
			fmt.Sprintf("Secret %s holds a value that Keywarden did not seal for this APIKey; it was deleted and a new key is issued", o.Key.SecretName()))
	}
	switch {
	case o.Created != nil:
		d.record(o, o.Created.Hash, o.Created.Prefix, secretRef(o.Key.SecretName(), o.Created.UID, o.Created.ResourceVersion), reissue)
	case o.CreateRaced && o.TamperedDeleted:
		// The Secret this pass deleted is still going.
		d.requeue(time.Second)
	case s != nil && !s.Owned && !reissue && !s.Controlled && s.Hash != "" && o.Now.Before(o.Key.CreationTimestamp.Add(RestoreWait)):
		// Created over a Secret that holds a key and that no APIKey
		// controls: a restore, whose status comes next. Nothing is
		// written until it has or the wait is over.
		d.Hold = true
		d.requeue(o.Key.CreationTimestamp.Add(RestoreWait).Sub(o.Now))
	case s != nil && !s.Owned && !reissue && !s.Controlled && s.Restored && s.Hash != "" && !s.Deleting &&
		!o.Key.CreationTimestamp.After(s.Created.Add(RestoreReissueAfter)):
		// A Secret restored for this APIKey (just before it: a restore
		// brings both back; an older one, such as a Secret orphaned long
		// ago, is left a conflict), whose status did not come back:
		// adopted if it does in time, else replaced by a new key.
		if until := o.Key.CreationTimestamp.Add(RestoreReissueAfter); o.Now.Before(until) {
			d.conflict(o, fmt.Sprintf("Secret %s holds a key that no APIKey controls and that this APIKey's status does not record: restored without its status? "+
				"Write the status back (kubectl replace --subresource=status) before %s to keep the key; after that a new key is issued into the Secret", s.Name, until.UTC().Format(time.RFC3339)))
			d.requeue(until.Sub(o.Now))
			break
		}
		d.Secret = SecretReplace
	case s != nil && !s.Owned:
		d.conflict(o, "")
	case s != nil && s.Gone:
		// The cache still shows a Secret that is gone: look again once
		// it has caught up.
		d.requeue(100 * time.Millisecond)
	case s != nil && s.Deleting:
		// Going (perhaps held by a finalizer): neither adopted nor
		// replaced until it is gone.
		d.requeue(5 * time.Second)
	case s != nil && s.Sealed && s.Hash != "":
		d.record(o, s.Hash, s.Prefix, secretRef(s.Name, s.UID, s.ResourceVersion), reissue)
	case s != nil && s.Read:
		d.Secret = SecretReplace
	case s != nil:
		d.Err = errors.New("Secret " + s.Name + " was not read")
	case o.CreateRaced:
		// Neither the cache nor the API server shows the Secret the
		// create ran into: look again at once.
		d.requeue(time.Millisecond)
	case o.CreateRefused != "":
		// Retrying cannot help: only a change of the spec can.
		d.Outcome = Outcome{
			Phase: keywardenv1alpha1.PhasePending, Stalled: true,
			Reason: keywardenv1alpha1.ReasonSecretInvalid, Message: o.CreateRefused,
		}
	default:
		d.Secret = SecretIssue
	}
}

// record records the key a Secret holds as the issued key. A new key's
// grant is what admit admitted; a reissued key keeps its issuance time and
// its grant.
func (d *Decision) record(o *Observed, hash, prefix string, ref *keywardenv1alpha1.SecretReference, reissue bool) {
	k, st := o.Key, &d.Status
	st.KeyHash, st.KeyPrefix, st.SecretRef = hash, prefix, ref
	if st.IssuedAt == nil {
		st.IssuedAt = stamp(o.Now)
		o.Policy.Issue(&k.Spec, st.IssuedAt.Time).Record(st)
		d.recordRules(o)
		setCompliance(st, k.Generation, nil) // admitted under its class
		if r := k.Spec.Rotation; r != nil && r.Request != "" {
			// The request the key was created with asks for no rotation.
			st.Rotation = &keywardenv1alpha1.RotationStatus{Request: r.Request}
		}
	}
	if st.ExpiresAt != nil {
		d.requeue(st.ExpiresAt.Sub(o.Now) + expirySlack)
	}
	d.Outcome = Outcome{Phase: keywardenv1alpha1.PhaseActive}
	if reissue {
		d.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyReissued, "Issue",
			fmt.Sprintf("A new key %s... was issued into Secret %s", prefix, st.SecretRef.Name))
		return
	}
	d.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyIssued, "Issue",
		fmt.Sprintf("Key %s... was issued into Secret %s", prefix, st.SecretRef.Name))
}

// conflict reports a Secret of the key's Secret name that this APIKey
// does not own, with msg (or, when empty, what to do about it). The
// Secret is not touched; an issued key whose Secret it replaced is no
// longer valid.
func (d *Decision) conflict(o *Observed, msg string) {
	st := &d.Status
	if st.Rotation != nil {
		st.Rotation.Next = nil // never reached the Secret, or went with it
	}
	if st.KeyHash != "" {
		st.KeySerial++ // the issued key is gone for good
	}
	st.KeyHash, st.KeyPrefix, st.SecretRef = "", "", nil
	if msg == "" {
		msg = fmt.Sprintf("Secret %s exists and is not owned by this APIKey; it is left untouched. Delete or rename it, or create the APIKey with another spec.secretName", o.Secret.Name)
	}
	if !HasCondition(o.Key, keywardenv1alpha1.ConditionStalled, keywardenv1alpha1.ReasonSecretConflict) {
		d.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventSecretConflict, "Issue", msg)
	}
	d.Outcome = Outcome{
		Phase: keywardenv1alpha1.PhasePending, Stalled: true,
		Reason: keywardenv1alpha1.ReasonSecretConflict, Message: msg,
	}
	d.requeue(ConflictRecheck)
}

// startReissue forgets the lost key; the status that says so is written
// before a new key is issued, so that a crash between writing the new
// Secret and recording its hash leads to adoption of that Secret, never to
// a second new key.
func (d *Decision) startReissue(msg string) {
	st := &d.Status
	if st.Rotation != nil {
		st.Rotation.Next = nil // never reached the Secret, or went with it
	}
	st.KeySerial++ // a Secret of the old key is never adopted again
	st.KeyHash, st.KeyPrefix, st.SecretRef = "", "", nil
	d.Outcome = Outcome{
		Phase: keywardenv1alpha1.PhasePending, Progressing: true,
		Reason: keywardenv1alpha1.ReasonReissuing, Message: msg,
	}
	d.requeue(time.Millisecond)
}

// deleteSecret deletes the key's Secret if this APIKey owns it; a foreign
// Secret of the same name is left alone.
func (d *Decision) deleteSecret(o *Observed) {
	if o.Secret != nil && o.Secret.Owned {
		d.Secret = SecretDelete
	}
}

// room decides whether the key has a place among the owner's active keys
// under the observed policy; known is false when the owner's keys were not
// observed.
func (o *Observed) room(owner string, self policy.Holder) (ok bool, ahead int, tentative, known bool) {
	ok2, found := o.Owners[owner]
	if !found {
		return false, 0, false, false
	}
	ok, ahead, tentative = AdmitAmong(self, ok2.Peers, ok2.Admitted, ok2.Moved, o.Policy.MaxActiveKeysPerOwner)
	return ok, ahead, tentative, true
}

// revokedOutcome is the outcome of a revoked key. One revoked as its spec
// declares has reached its declared state. One the verifier revoked
// (reported, or a rotated-out key reused) while its spec still declares
// it active has not, and never will: it stalls until a person replaces it
// and acknowledges the revocation in the spec, or deletes the APIKey.
func revokedOutcome(k *keywardenv1alpha1.APIKey, r *keywardenv1alpha1.Revocation) Outcome {
	out := Outcome{
		Phase: keywardenv1alpha1.PhaseRevoked, Reason: keywardenv1alpha1.ReasonRevoked,
		Message: "The key is revoked, as its spec declares; its Secret is deleted",
	}
	if r == nil {
		return out
	}
	out.Message = "The key is revoked (" + r.Reason + "): " + r.Message + "; its Secret is deleted"
	if !k.Spec.Revoked {
		out.Stalled, out.Reason = true, r.Reason
		out.Message += "; create a new APIKey to restore access, and set revoked: true on this one or delete it"
	}
	return out
}

// expiredOutcome is the outcome of an expired key: it no longer does what
// it was declared for, and only a person (with a new APIKey) can change
// that, so it is stalled.
func expiredOutcome(at *metav1.Time) Outcome {
	msg := "The key expired; create a new APIKey to restore access"
	if at != nil {
		msg = fmt.Sprintf("The key expired at %s; create a new APIKey to restore access", at.UTC().Format(time.RFC3339))
	}
	return Outcome{Phase: keywardenv1alpha1.PhaseExpired, Stalled: true, Reason: keywardenv1alpha1.ReasonExpired, Message: msg}
}

// stamp is a time as status stores it, to the second, so that what a pass
// computes from it is what later passes read back.
func stamp(now time.Time) *metav1.Time {
	return &metav1.Time{Time: now.Truncate(time.Second)}
}

// setCompliance records whether an issued key still fits its class.
func setCompliance(st *keywardenv1alpha1.APIKeyStatus, generation int64, v *policy.Violation) {
	c := metav1.Condition{
		Type: keywardenv1alpha1.ConditionClassCompliant, Status: metav1.ConditionTrue, ObservedGeneration: generation,
		Reason: keywardenv1alpha1.ReasonCompliant, Message: "The key fits its class",
	}
	if v != nil {
		c.Status, c.Reason = metav1.ConditionFalse, v.Reason
		c.Message = "The key was issued but no longer fits its class: " + v.Message
	}
	apimeta.SetStatusCondition(&st.Conditions, c)
}

// HasCondition reports whether the key's condition of the given type is
// True with the given reason.
func HasCondition(k *keywardenv1alpha1.APIKey, typ, reason string) bool {
	c := apimeta.FindStatusCondition(k.Status.Conditions, typ)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
}

// Issued reports whether a key was issued: it holds a key, or held one and
// is being reissued. An issued key keeps its grant and its place under its
// owner's limit until it expires, is revoked or is deleted.
func Issued(st *keywardenv1alpha1.APIKeyStatus) bool {
	return st.KeyHash != "" || st.IssuedAt != nil
}

func secretRef(name string, uid types.UID, resourceVersion string) *keywardenv1alpha1.SecretReference {
	return &keywardenv1alpha1.SecretReference{Name: name, UID: string(uid), ResourceVersion: resourceVersion}
}

// Recorded reports whether the Secret is the one status records, as the
// controller last saw it hold the key: the same object, unchanged since. A
// Secret recorded without its resourceVersion (by an earlier release,
// which made its Secrets immutable) is not taken on trust: it may not be
// immutable, and have changed in place. It is read once, and recorded
// with its resourceVersion when it holds the key.
func Recorded(st *keywardenv1alpha1.APIKeyStatus, s *Secret) bool {
	ref := st.SecretRef
	return ref != nil && ref.UID == string(s.UID) && ref.ResourceVersion != "" && ref.ResourceVersion == s.ResourceVersion
}
