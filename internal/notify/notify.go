// Package notify builds the lifecycle notifications Keywarden sends about
// a key to a receiver its class names, and signs them so that the receiver
// can tell they came from Keywarden: CloudEvents (structured JSON), each
// with an id that stays the same however often it is sent, and an
// HMAC-SHA256 signature over a timestamp and the body, as Stripe signs its
// webhooks. A notification names the key, its owner and what happened;
// never the key itself, nor its hash.
//
// What a notification says, when it is due and how it is signed are pure
// functions of the key, the time and the secret; Sender posts them.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// Types of notification, by the transition of the key's history they tell.
const (
	TypeCreated     = "dev.keywarden.apikey.created"
	TypeReissued    = "dev.keywarden.apikey.reissued"
	TypeRotated     = "dev.keywarden.apikey.rotated"
	TypeGrant       = "dev.keywarden.apikey.grant_changed"
	TypeRevoked     = "dev.keywarden.apikey.revoked"
	TypeExpired     = "dev.keywarden.apikey.expired"
	TypeExpiring    = "dev.keywarden.apikey.expiring"
	TypeDeleted     = "dev.keywarden.apikey.deleted"
	typeSpecVersion = "1.0"
)

// types maps the events status.history records to notification types.
var types = map[string]string{
	keywardenv1alpha1.EventKeyIssued:               TypeCreated,
	keywardenv1alpha1.EventKeyReissued:             TypeReissued,
	keywardenv1alpha1.EventKeyReissuedAfterRestore: TypeReissued,
	keywardenv1alpha1.EventKeyRotated:              TypeRotated,
	keywardenv1alpha1.EventGrantChanged:            TypeGrant,
	keywardenv1alpha1.EventKeyRevoked:              TypeRevoked,
	keywardenv1alpha1.EventKeyExpired:              TypeExpired,
}

// Key is what a notification says of the key.
type Key struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	UID         string     `json:"uid"`
	DisplayName string     `json:"displayName"`
	Owner       string     `json:"owner"`
	Role        string     `json:"role,omitempty"`
	Class       string     `json:"class,omitempty"`
	KeyPrefix   string     `json:"keyPrefix,omitempty"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
}

// Data is a notification's payload.
type Data struct {
	Key Key `json:"key"`
	// Event is the transition, as the key's history names it, and Message
	// what the controller recorded of it.
	Event   string `json:"event"`
	Message string `json:"message,omitempty"`
	// Reason says why a key was revoked: Revoked (its spec), KeyReported
	// (reported as leaked) or RotatedKeyReused (a rotated-out key was used
	// again under a class that revokes on reuse).
	Reason string `json:"reason,omitempty"`
}

// Reasons of a revocation.
const (
	ReasonSpec = "Revoked"
)

// Event is one notification, as a structured-mode CloudEvent.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            Data      `json:"data"`
}

// keyOf is what notifications say of k.
func keyOf(k *keywardenv1alpha1.APIKey) Key {
	out := Key{
		Namespace: k.Namespace, Name: k.Name, UID: string(k.UID), DisplayName: k.Spec.DisplayName,
		Owner: k.GrantedOwner(), Role: k.GrantedRole(), Class: k.GrantedClass(), KeyPrefix: k.Status.KeyPrefix,
	}
	if t := k.Status.ExpiresAt; t != nil {
		at := t.UTC()
		out.ExpiresAt = &at
	}
	return out
}

func event(k *keywardenv1alpha1.APIKey, typ, transition, message string, at time.Time) Event {
	reason := ""
	if typ == TypeRevoked {
		reason = ReasonSpec
		if r := k.Status.Revocation; r != nil {
			reason = r.Reason
		}
	}
	return Event{
		SpecVersion: typeSpecVersion,
		ID:          IDOf(string(k.UID), transition, at),
		Source:      "/apis/keywarden.dev/v1alpha1/namespaces/" + k.Namespace + "/apikeys/" + k.Name,
		Type:        typ, Subject: k.Namespace + "/" + k.Name, Time: at.UTC(),
		DataContentType: "application/json",
		Data:            Data{Key: keyOf(k), Event: transition, Message: message, Reason: reason},
	}
}

// FromHistory are the notifications of the key's recorded transitions, in
// the order recorded; transitions that notify no one are left out.
func FromHistory(k *keywardenv1alpha1.APIKey) []Event {
	var out []Event
	for _, h := range k.Status.History {
		if typ, ok := types[h.Event]; ok {
			out = append(out, event(k, typ, h.Event, h.Message, h.At.Time))
		}
	}
	return out
}

// Expiring are the warnings due by now for an active key that expires:
// at the class's warning, and again a day before when the warning is
// longer (none when the class turns warnings off, and none for a key
// issued for no longer than the warning, which was meant to be
// short-lived, as its ExpiringSoon condition is not set). A warning's id
// is that of the key, the expiry and which warning it is, whatever the
// time it is computed at: a class whose warning changes does not warn
// again of the same expiry.
func Expiring(k *keywardenv1alpha1.APIKey, warning time.Duration, now time.Time) []Event {
	var out []Event
	for _, w := range warnings(k, warning) {
		if now.Before(w.at) || !now.Before(k.Status.ExpiresAt.Time) {
			continue
		}
		exp := k.Status.ExpiresAt.UTC()
		e := event(k, TypeExpiring, keywardenv1alpha1.EventKeyExpiringSoon,
			fmt.Sprintf("The key expires at %s", exp.Format(time.RFC3339)), w.at)
		e.ID = IDOf(string(k.UID), keywardenv1alpha1.EventKeyExpiringSoon+"/"+w.which, exp)
		out = append(out, e)
	}
	return out
}

type warningAt struct {
	at    time.Time
	which string
}

// warnings are the key's expiry warnings, due or not, earliest first.
func warnings(k *keywardenv1alpha1.APIKey, warning time.Duration) []warningAt {
	exp, iss := k.Status.ExpiresAt, k.Status.IssuedAt
	if exp == nil || warning <= 0 || k.Status.Phase != keywardenv1alpha1.PhaseActive ||
		iss != nil && exp.Sub(iss.Time) <= warning {
		return nil
	}
	out := []warningAt{{exp.Add(-warning), "window"}}
	if warning > keywardenv1alpha1.Day {
		out = append(out, warningAt{exp.Add(-keywardenv1alpha1.Day), "day"})
	}
	return out
}

// IDOf is the id of the notification of a transition: the same for the
// same key, transition and time, so a receiver that deduplicates by id
// sees each transition once however often it is sent.
func IDOf(uid, transition string, at time.Time) string {
	sum := sha256.Sum256([]byte(uid + "\x00" + transition + "\x00" + at.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(sum[:16])
}

// Body is the event as sent: its JSON.
func (e Event) Body() ([]byte, error) {
	return json.Marshal(e)
}

// SignatureHeader carries the signature of a notification.
const SignatureHeader = "Keywarden-Signature"

// Sign is the value of SignatureHeader for the body sent at the given
// time: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>"> for each
// secret (more than one while a secret is being replaced).
func Sign(body []byte, at time.Time, secrets ...[]byte) string {
	t := strconv.FormatInt(at.Unix(), 10)
	parts := []string{"t=" + t}
	for _, s := range secrets {
		parts = append(parts, "v1="+mac(s, t, body))
	}
	return strings.Join(parts, ",")
}

func mac(secret []byte, t string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("no valid " + SignatureHeader + " header")
	ErrTooOld       = errors.New("the signature's timestamp is outside the tolerance: a replay?")
	ErrBadSignature = errors.New("no signature matches the body with this secret")
)

// Verify checks, as a receiver does, that body was signed with secret at
// a time within tolerance of now.
func Verify(body []byte, header string, secret []byte, now time.Time, tolerance time.Duration) error {
	var t string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			return ErrNoSignature
		case k == "t":
			t = v
		case k == "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(t, 10, 64)
	if err != nil || len(sigs) == 0 || len(secret) == 0 {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	want := mac(secret, t, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}

// Due are the notifications of the key the receiver should have by now:
// those of its history recorded since the class began notifying (since;
// zero for all), in order, then the latest expiry warning due (an earlier
// one it supersedes is not sent).
func Due(k *keywardenv1alpha1.APIKey, warning time.Duration, since, now time.Time) []Event {
	var out []Event
	for _, e := range FromHistory(k) {
		if !e.Time.Before(since.Truncate(time.Second)) {
			out = append(out, e)
		}
	}
	if w := Expiring(k, warning, now); len(w) > 0 {
		out = append(out, w[len(w)-1])
	}
	return out
}

// NextWarning is when the key's next expiry warning falls due after now;
// zero when none will.
func NextWarning(k *keywardenv1alpha1.APIKey, warning time.Duration, now time.Time) time.Time {
	for _, w := range warnings(k, warning) {
		if now.Before(w.at) {
			return w.at
		}
	}
	return time.Time{}
}

// TransitionDeleted names the deletion of a key's APIKey, which its
// history cannot record.
const TransitionDeleted = "KeyDeleted"

// DueAtDeletion are the notifications of a key whose APIKey is gone, as
// it was last seen: those still due, then its deletion.
func DueAtDeletion(k *keywardenv1alpha1.APIKey, warning time.Duration, since, now time.Time) []Event {
	out := Due(k, warning, since, now)
	at := now
	if d := k.DeletionTimestamp; d != nil {
		at = d.Time
	}
	return append(out, event(k, TypeDeleted, TransitionDeleted, "The APIKey was deleted, and its Secret with it", at))
}

// Pending are the due notifications not yet acknowledged, in order.
func Pending(due []Event, notified []string) []Event {
	var out []Event
	for _, e := range due {
		if !slices.Contains(notified, e.ID) {
			out = append(out, e)
		}
	}
	return out
}

// Acknowledge is what status.notified becomes when the receiver
// acknowledged id: the ids of due notifications acknowledged, in order.
// Ids of notifications no longer due (history entries dropped, warnings
// of an expiry that changed) go, so the list stays as short as the
// history.
func Acknowledge(due []Event, notified []string, id string) []string {
	out := []string{}
	for _, e := range due {
		if e.ID == id || slices.Contains(notified, e.ID) {
			out = append(out, e.ID)
		}
	}
	return out
}
