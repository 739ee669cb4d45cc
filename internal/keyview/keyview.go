// Package keyview holds the rules by which kubectl-keywarden shows APIKeys
// to a person: the list's order, columns and filters, durations in days,
// and conditions in words. Everything here is pure: the time is given.
package keyview

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// TimeFormat is how times are shown, by the plugin and the console alike:
// to the minute, in the local zone, named.
const TimeFormat = "2006-01-02 15:04 MST"

// UseFormat is how a key's last use is shown: to the second, in the local
// zone, named.
const UseFormat = "2006-01-02 15:04:05 MST"

// ParseDuration reads a duration as a person writes it: days or weeks
// (30d, 2w), a Go duration (90m, 720h), or days with a Go duration after
// them (1d12h). It must be positive.
func ParseDuration(s string) (time.Duration, error) {
	d, err := Lifetime(s)
	if err != nil {
		return 0, err
	}
	return d.Duration, nil
}

// Lifetime reads a duration as ParseDuration does, for a field of an
// APIKey, written as a Go duration (30d as 720h0m0s): a key a person
// creates or edits stays readable by replicas of earlier releases, which
// know no days, during an upgrade or after going back. Lists show it in
// days again.
func Lifetime(s string) (*keywardenv1alpha1.Duration, error) {
	bad := fmt.Errorf("%q is not a duration: use days (30d), weeks (2w), hours (12h) or minutes (90m)", s)
	if d, err := keywardenv1alpha1.ParseDuration(s); err == nil {
		return goDuration(s, d.Duration)
	}
	i := strings.IndexByte(s, 'd')
	if i < 0 {
		return nil, bad
	}
	days, err := strconv.Atoi(s[:i])
	if err != nil || days < 0 || days > 100*366 {
		return nil, bad
	}
	rest, err := time.ParseDuration(s[i+1:])
	if err != nil || rest < 0 {
		return nil, bad
	}
	return goDuration(s, time.Duration(days)*keywardenv1alpha1.Day+rest)
}

// maxGoDuration is the longest Go duration the API server takes (six
// digits of hours).
const maxGoDuration = 999999 * time.Hour

// goDuration is d written as a Go duration, when the API server takes it.
func goDuration(s string, d time.Duration) (*keywardenv1alpha1.Duration, error) {
	switch {
	case d <= 0:
		return nil, fmt.Errorf("%q is not a positive duration", s)
	case d > maxGoDuration:
		return nil, fmt.Errorf("%q is longer than a key takes: at most %dd (%s)", s, maxGoDuration/keywardenv1alpha1.Day, "999999h")
	}
	return keywardenv1alpha1.DurationOf(d), nil
}

// Phases are the phases a key can be in, as --phase accepts them.
var Phases = []keywardenv1alpha1.APIKeyPhase{
	keywardenv1alpha1.PhasePending, keywardenv1alpha1.PhaseActive, keywardenv1alpha1.PhaseRefused,
	keywardenv1alpha1.PhaseExpired, keywardenv1alpha1.PhaseRevoked,
}

// ParsePhase reads a phase in any case.
func ParsePhase(s string) (keywardenv1alpha1.APIKeyPhase, error) {
	for _, p := range Phases {
		if strings.EqualFold(s, string(p)) {
			return p, nil
		}
	}
	names := make([]string, len(Phases))
	for i, p := range Phases {
		names[i] = string(p)
	}
	return "", fmt.Errorf("%q is not a phase: one of %s", s, strings.Join(names, ", "))
}

// Phase is the key's phase; Pending until the controller has written one.
func Phase(k *keywardenv1alpha1.APIKey) keywardenv1alpha1.APIKeyPhase {
	if k.Status.Phase == "" {
		return keywardenv1alpha1.PhasePending
	}
	return k.Status.Phase
}

// Scopes are the key's granted scopes, or, before it is issued, the scopes
// its spec declares.
func Scopes(k *keywardenv1alpha1.APIKey) []keywardenv1alpha1.Scope {
	if k.Status.Scopes != nil || k.Status.Phase == keywardenv1alpha1.PhaseActive {
		return k.Status.Scopes
	}
	return k.Spec.Scopes
}

// Status is the STATUS column: the phase, with the reason when the key
// needs a person (Stalled) or waits for a place (Refused), and "expiring
// soon" for an active key whose class warns of its expiry.
func Status(k *keywardenv1alpha1.APIKey) string {
	phase := Phase(k)
	switch phase {
	case keywardenv1alpha1.PhaseExpired, keywardenv1alpha1.PhaseRevoked:
		return string(phase)
	case keywardenv1alpha1.PhaseRefused:
		if c := condition(k, keywardenv1alpha1.ConditionReconciling); c != nil && c.Reason != "" {
			return string(phase) + " (" + c.Reason + ")"
		}
		return string(phase)
	}
	if c := condition(k, keywardenv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		return string(phase) + " (Stalled: " + c.Reason + ")"
	}
	if c := condition(k, keywardenv1alpha1.ConditionExpiringSoon); phase == keywardenv1alpha1.PhaseActive && c != nil && c.Status == metav1.ConditionTrue {
		return "Active (expiring soon)"
	}
	return string(phase)
}

func condition(k *keywardenv1alpha1.APIKey, t string) *metav1.Condition {
	for i := range k.Status.Conditions {
		if k.Status.Conditions[i].Type == t {
			return &k.Status.Conditions[i]
		}
	}
	return nil
}

// ExpiresAt is when the key expires: as issued, or, before issuance, as
// its spec asks; nil when it does not expire or the time is not known yet
// (a lifetime counts from issuance).
func ExpiresAt(k *keywardenv1alpha1.APIKey) *metav1.Time {
	switch {
	case k.Status.ExpiresAt != nil:
		return k.Status.ExpiresAt
	case k.Status.IssuedAt != nil:
		return nil
	}
	return k.Spec.ExpiresAt
}

// Expires is the EXPIRES column: when the key expires, "never" when it
// does not, and, before issuance, what its spec asks for.
func Expires(k *keywardenv1alpha1.APIKey) string {
	switch at := ExpiresAt(k); {
	case at != nil:
		return at.Local().Format(TimeFormat)
	case k.Status.IssuedAt != nil:
		return "never"
	case k.Spec.Lifetime != nil:
		return Days(k.Spec.Lifetime.Duration) + " after issuance"
	}
	return "-"
}

// LastUsed is the LAST USED column: when a tracked key was last used,
// "Never" when it has not been, "untracked" when its use is not recorded.
func LastUsed(k *keywardenv1alpha1.APIKey) string {
	switch {
	case !k.Spec.TrackLastUsed:
		return "untracked"
	case k.Status.LastUsedAt == nil:
		return "Never"
	}
	return k.Status.LastUsedAt.Local().Format(UseFormat)
}

// HasExpired tells whether the key has expired by now: its phase says so,
// or its expiry has passed (before the controller has marked it).
func HasExpired(k *keywardenv1alpha1.APIKey, now time.Time) bool {
	return k.Status.Phase == keywardenv1alpha1.PhaseExpired || k.Status.ExpiresAt != nil && !now.Before(k.Status.ExpiresAt.Time)
}

// Revoked tells whether the key is revoked, or asked to be: by its spec,
// by a leak report or a reused rotated key (status), or as its phase says.
func Revoked(k *keywardenv1alpha1.APIKey) bool {
	return k.Spec.Revoked || k.Status.Revocation != nil || k.Status.RevokedAt != nil || k.Status.Phase == keywardenv1alpha1.PhaseRevoked
}

// NameAndDescription is the display name and, after it, the description.
func NameAndDescription(k *keywardenv1alpha1.APIKey) string {
	if k.Spec.Description == "" {
		return k.Spec.DisplayName
	}
	return k.Spec.DisplayName + ": " + k.Spec.Description
}

// RoleNames are the names classes give their roles for people: by class,
// then by role.
type RoleNames map[string]map[string]string

// RoleNamesOf reads the display names of the classes' roles.
func RoleNamesOf(classes []keywardenv1alpha1.APIKeyClass) RoleNames {
	out := RoleNames{}
	for i := range classes {
		c := &classes[i]
		for _, r := range c.Spec.Roles {
			if r.DisplayName == "" {
				continue
			}
			if out[c.Name] == nil {
				out[c.Name] = map[string]string{}
			}
			out[c.Name][r.Name] = r.DisplayName
		}
	}
	return out
}

// Of is the key's granted role as its class presents it, or its name.
func (n RoleNames) Of(k *keywardenv1alpha1.APIKey) string {
	return n.Name(k.GrantedClass(), k.GrantedRole())
}

// RoleOf is the role as a key's page shows it: the class's name for it
// with the role's own after it, or the role alone (class may be nil).
func RoleOf(class *keywardenv1alpha1.APIKeyClass, role string) string {
	if class == nil {
		return role
	}
	if n := RoleNamesOf([]keywardenv1alpha1.APIKeyClass{*class}).Name(class.Name, role); n != role {
		return n + " (" + role + ")"
	}
	return role
}

// Name is the role as the class presents it, or its name.
func (n RoleNames) Name(class, role string) string {
	if d := n[class][role]; d != "" && role != "" {
		return d
	}
	return role
}

// Days writes a duration in days when it is whole days, else as Go does.
func Days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// Newest sorts keys newest first (by creation), then by namespace and name.
func Newest(keys []keywardenv1alpha1.APIKey) {
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := &keys[i], &keys[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return b.CreationTimestamp.Before(&a.CreationTimestamp)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

// Filter selects keys for the list. Empty fields select every key.
type Filter struct {
	Owner, Role, Class string
	Phase              keywardenv1alpha1.APIKeyPhase
	// Search is text looked for, in any case, in the name, display name,
	// owner, prefix and description.
	Search string
	// ExpiringWithin selects active keys that expire within it.
	ExpiringWithin time.Duration
	// UnusedFor selects active tracked keys not used for it: last used
	// before, or never used and issued before.
	UnusedFor time.Duration
}

// Match reports whether the filter selects the key at the time now.
func (f Filter) Match(k *keywardenv1alpha1.APIKey, now time.Time) bool {
	switch {
	case f.Owner != "" && k.GrantedOwner() != f.Owner:
		return false
	case f.Role != "" && k.GrantedRole() != f.Role:
		return false
	case f.Class != "" && k.GrantedClass() != f.Class:
		return false
	case f.Phase != "" && Phase(k) != f.Phase:
		return false
	case f.Search != "" && !search(k, f.Search):
		return false
	}
	active := Phase(k) == keywardenv1alpha1.PhaseActive
	if f.ExpiringWithin > 0 && (!active || k.Status.ExpiresAt == nil || k.Status.ExpiresAt.After(now.Add(f.ExpiringWithin))) {
		return false
	}
	if f.UnusedFor > 0 {
		if !active || !k.Spec.TrackLastUsed {
			return false
		}
		since := k.Status.IssuedAt
		if k.Status.LastUsedAt != nil {
			since = k.Status.LastUsedAt
		}
		if since == nil || since.After(now.Add(-f.UnusedFor)) {
			return false
		}
	}
	return true
}

func search(k *keywardenv1alpha1.APIKey, text string) bool {
	text = strings.ToLower(text)
	for _, field := range []string{k.Name, k.Spec.DisplayName, k.Spec.Owner, k.Status.Owner, k.Status.KeyPrefix, k.Spec.Description} {
		if strings.Contains(strings.ToLower(field), text) {
			return true
		}
	}
	return false
}

// Select is the keys the filter selects at the time now, newest first.
func Select(keys []keywardenv1alpha1.APIKey, f Filter, now time.Time) []keywardenv1alpha1.APIKey {
	out := []keywardenv1alpha1.APIKey{}
	for i := range keys {
		if f.Match(&keys[i], now) {
			out = append(out, keys[i])
		}
	}
	Newest(out)
	return out
}

// SortFields are the columns a list can be sorted by.
var SortFields = []string{"name", "owner", "role", "created", "expires", "lastUsed", "status"}

// SortBy sorts keys by a column, ascending or descending; keys equal in it
// keep the list's order, newest first then by namespace and name. A key
// without the time sorted by (no expiry, never used) comes last either way.
func SortBy(keys []keywardenv1alpha1.APIKey, field string, desc bool) error {
	Newest(keys)
	timeOf := func(t *metav1.Time) (time.Time, bool) {
		if t == nil {
			return time.Time{}, false
		}
		return t.Time, true
	}
	var less func(a, b *keywardenv1alpha1.APIKey) (bool, bool) // less, and whether the two differ
	byText := func(f func(*keywardenv1alpha1.APIKey) string) func(a, b *keywardenv1alpha1.APIKey) (bool, bool) {
		return func(a, b *keywardenv1alpha1.APIKey) (bool, bool) {
			x, y := strings.ToLower(f(a)), strings.ToLower(f(b))
			return x < y, x != y
		}
	}
	byTime := func(f func(*keywardenv1alpha1.APIKey) *metav1.Time) func(a, b *keywardenv1alpha1.APIKey) (bool, bool) {
		return func(a, b *keywardenv1alpha1.APIKey) (bool, bool) {
			x, okx := timeOf(f(a))
			y, oky := timeOf(f(b))
			switch {
			case okx != oky:
				// The missing time last, whichever the direction: flipped
				// below for descending, so flipped here too.
				return okx != desc, true
			case !okx:
				return false, false
			}
			return x.Before(y), !x.Equal(y)
		}
	}
	switch field {
	case "name":
		less = byText(func(k *keywardenv1alpha1.APIKey) string { return k.Namespace + "/" + k.Name })
	case "owner":
		less = byText(func(k *keywardenv1alpha1.APIKey) string { return k.GrantedOwner() })
	case "role":
		less = byText(func(k *keywardenv1alpha1.APIKey) string { return k.GrantedRole() })
	case "status":
		less = byText(Status)
	case "created":
		less = byTime(func(k *keywardenv1alpha1.APIKey) *metav1.Time { return &k.CreationTimestamp })
	case "expires":
		less = byTime(ExpiresAt)
	case "lastUsed":
		less = byTime(func(k *keywardenv1alpha1.APIKey) *metav1.Time { return k.Status.LastUsedAt })
	default:
		return fmt.Errorf("cannot sort by %q: sort by %s", field, strings.Join(SortFields, ", "))
	}
	sort.SliceStable(keys, func(i, j int) bool {
		l, differ := less(&keys[i], &keys[j])
		if !differ {
			return false
		}
		return l != desc
	})
	return nil
}
