package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// Grant is what an issued key may do: what the controller admitted under
// the key's class and recorded in status. The verifier answers from it
// alone, so that editing an APIKey's spec never grants anything by itself.
type Grant struct {
	Owner     string
	Role      string
	Scopes    []keywardenv1alpha1.Scope
	ExpiresAt *metav1.Time
	ClassName string
}

// Granted is the grant of an issued key: the one recorded in its status
// (whose role is empty when the controller granted none), or, for a key
// issued by a release that did not record grants (no status.owner), the
// one that release's verifier answered with until the controller records
// its first grant: spec.owner, spec.role, spec.scopes or else
// status.scopes, and the expiry of spec.expiresAt, issuedAt plus
// spec.lifetime, or status.expiresAt.
func Granted(spec *keywardenv1alpha1.APIKeySpec, st *keywardenv1alpha1.APIKeyStatus) Grant {
	if st.GrantRecorded() {
		return Grant{Owner: st.Owner, Role: st.Role, Scopes: st.Scopes, ExpiresAt: st.ExpiresAt, ClassName: st.ClassName}
	}
	g := Grant{Owner: spec.Owner, Role: spec.Role, Scopes: spec.Scopes, ClassName: st.ClassName}
	if len(g.Scopes) == 0 {
		g.Scopes = st.Scopes
	}
	g.ExpiresAt = EffectiveExpiry(spec, st.IssuedAt, st.ExpiresAt)
	return g
}

// Baseline is the grant Decide judges an issued key's spec against: the
// grant recorded in its status, or, for a key issued by a release that did
// not record grants, only what that release recorded which no edit of the
// spec could have changed: the class the key was issued under, and its
// expiry bounded by that class's maxLifetime from issuance (issuedUnder,
// nil when the class is gone or the key had none), though never sooner
// than the class's expiry warning (at most its maxLifetime) from now, so
// that the upgrade expires no old key without a warning. Its owner is the spec's, the
// one that release counted the key against. It has no role and no scopes:
// the spec's are judged against the class as a new key's would be, so an
// edit made just before an upgrade widens nothing, and a role the class
// refuses is not granted at all (the key then verifies no request until
// its spec fits).
func Baseline(spec *keywardenv1alpha1.APIKeySpec, st *keywardenv1alpha1.APIKeyStatus, issuedUnder *Policy, now time.Time) Grant {
	if st.GrantRecorded() {
		return Granted(spec, st)
	}
	g := Grant{Owner: spec.Owner, ClassName: st.ClassName, ExpiresAt: st.ExpiresAt}
	if p := issuedUnder; p != nil && p.MaxLifetime > 0 && st.IssuedAt != nil {
		latest := st.IssuedAt.Add(p.MaxLifetime)
		warning := p.ExpiryWarning
		if warning <= 0 {
			warning = keywardenv1alpha1.DefaultExpiryWarning
		}
		warning = min(warning, p.MaxLifetime)
		if floor := now.Add(warning).Truncate(time.Second); latest.Before(floor) {
			latest = floor
		}
		if g.ExpiresAt == nil || g.ExpiresAt.After(latest) {
			t := metav1.NewTime(latest)
			g.ExpiresAt = &t
		}
	}
	return g
}

// Record writes the grant into a key's status.
func (g Grant) Record(st *keywardenv1alpha1.APIKeyStatus) {
	st.Owner, st.Role, st.Scopes, st.ExpiresAt, st.ClassName = g.Owner, g.Role, g.Scopes, g.ExpiresAt, g.ClassName
}

// Equal reports whether two grants are the same.
func (g Grant) Equal(o Grant) bool {
	return g.Owner == o.Owner && g.Role == o.Role && g.ClassName == o.ClassName &&
		sameScopes(g.Scopes, o.Scopes) && sameTime(g.ExpiresAt, o.ExpiresAt)
}

// Issue is the grant of a key issued at issuedAt under the policy. (A key
// reissued keeps the grant it has.)
func (p Policy) Issue(spec *keywardenv1alpha1.APIKeySpec, issuedAt time.Time) Grant {
	g := Grant{Owner: spec.Owner, Role: spec.Role, Scopes: p.EffectiveScopes(spec), ClassName: p.ClassName}
	switch {
	case spec.ExpiresAt != nil:
		g.ExpiresAt = spec.ExpiresAt.DeepCopy()
	case spec.Lifetime != nil:
		t := metav1.NewTime(issuedAt.Add(spec.Lifetime.Duration))
		g.ExpiresAt = &t
	default:
		g.ExpiresAt = p.ExpiresAt(spec, issuedAt)
	}
	return g
}

// ResolveIssued returns the policy that applies to an issued key: the class
// its spec names, else the class it was issued under (a new default class
// does not take over issued keys), else the built-in defaults.
func ResolveIssued(spec *keywardenv1alpha1.APIKeySpec, granted Grant, classes []keywardenv1alpha1.APIKeyClass) (Policy, *Violation) {
	switch {
	case spec.ClassName != "":
		return Resolve(spec.ClassName, classes)
	case granted.ClassName != "":
		return Resolve(granted.ClassName, classes)
	}
	return BuiltIn(), nil
}

// GrantClass is the policy of the class an issued key is granted under
// (status.className), as it stands, or nil when the key was granted under
// none or the class is gone.
func GrantClass(st *keywardenv1alpha1.APIKeyStatus, classes []keywardenv1alpha1.APIKeyClass) *Policy {
	if st.ClassName == "" {
		return nil
	}
	for i := range classes {
		if classes[i].Name == st.ClassName {
			p := FromClass(&classes[i])
			return &p
		}
	}
	return nil
}

// requested is the grant that the spec of a key issued at issuedAt asks
// for under the class className, given its current grant. A spec that names
// no scopes asks for all of its role's scopes only when its role or class
// changes (a class that changes its roles never rewrites issued keys), and
// one that names no expiry keeps the granted expiry.
func (p Policy) requested(spec *keywardenv1alpha1.APIKeySpec, granted Grant, issuedAt time.Time, className string) Grant {
	r := Grant{Owner: spec.Owner, Role: spec.Role, Scopes: spec.Scopes, ExpiresAt: granted.ExpiresAt, ClassName: className}
	if len(spec.Scopes) == 0 {
		r.Scopes = granted.Scopes
		if spec.Role != granted.Role || className != granted.ClassName {
			r.Scopes = p.EffectiveScopes(spec)
		}
	}
	switch {
	case spec.ExpiresAt != nil:
		r.ExpiresAt = spec.ExpiresAt
	case spec.Lifetime != nil:
		t := metav1.NewTime(issuedAt.Add(spec.Lifetime.Duration))
		r.ExpiresAt = &t
	}
	return r
}

// Decision is the outcome of judging the spec of an issued key against its
// grant.
type Decision struct {
	// Grant is the key's grant after the decision.
	Grant Grant
	// Changes name what the decision changed in the grant, for an event.
	Changes []string
	// Refusals are the parts of the spec that are not granted, each with
	// its rule: access (role, scopes, class), then expiry, then owner.
	Refusals []*Violation
	// Refused sums them up: the first one's reason and all their messages.
	// Its message is the same wherever the change is refused: by the
	// controller, or at apply time by the webhook. Nil when the grant is
	// what the spec asks for.
	Refused *Violation
}

// Refuses reports whether the decision refuses something for the reason.
func (d Decision) Refuses(reason string) bool {
	for _, v := range d.Refusals {
		if v.Reason == reason {
			return true
		}
	}
	return false
}

// RoomFor reports whether an owner may take one more active key: nil, or
// the refusal.
type RoomFor func(owner string) *Violation

// Decide judges a spec change to a key issued at issuedAt like the issuance
// of a new key under the class the spec now names (pol, or resolveErr when
// it does not resolve). The expiry may be brought forward at any time and
// pushed back only within the class's maxLifetime from issuance; a new
// owner must have room under its limit; the role and scopes must fit the
// class, and a key that moves to another class must fit it whole (its
// expiry, and its owner's limit there). Each of the three parts is granted
// or refused on its own, and what is refused keeps its granted value: a
// change is never a silent widening.
func Decide(granted Grant, spec *keywardenv1alpha1.APIKeySpec, pol Policy, resolveErr *Violation, issuedAt time.Time, room RoomFor) Decision {
	className := pol.ClassName
	if resolveErr != nil {
		className = granted.ClassName
		if spec.ClassName != "" {
			className = spec.ClassName
		}
	}
	req := pol.requested(spec, granted, issuedAt, className)
	d := Decision{Grant: granted}
	var access, expiry, owner *Violation

	if !sameTime(req.ExpiresAt, granted.ExpiresAt) {
		sooner := req.ExpiresAt != nil && (granted.ExpiresAt == nil || req.ExpiresAt.Before(granted.ExpiresAt))
		if !sooner {
			if expiry = resolveErr; expiry == nil {
				expiry = pol.CheckExpiry(req.ExpiresAt, issuedAt)
			}
		}
		if expiry == nil {
			d.Changes = append(d.Changes, fmt.Sprintf("expiry %s → %s", moment(granted.ExpiresAt), moment(req.ExpiresAt)))
			d.Grant.ExpiresAt = req.ExpiresAt
		}
	}

	if req.Owner != granted.Owner {
		if owner = resolveErr; owner == nil {
			owner = room(req.Owner)
		}
		if owner == nil {
			d.Changes = append(d.Changes, fmt.Sprintf("owner %s → %s", granted.Owner, req.Owner))
			d.Grant.Owner = req.Owner
		}
	}

	if req.Role != granted.Role || req.ClassName != granted.ClassName || !sameScopes(req.Scopes, granted.Scopes) {
		if access = resolveErr; access == nil {
			access = pol.CheckAccess(req.Role, req.Scopes)
		}
		if access == nil && req.ClassName != granted.ClassName {
			// The key joins another class as it stands: its expiry and
			// its owner's count must fit that class too.
			if access = pol.CheckExpiry(d.Grant.ExpiresAt, issuedAt); access == nil && d.Grant.Owner == granted.Owner {
				access = room(d.Grant.Owner)
			}
		}
		if access == nil {
			if req.Role != granted.Role {
				d.Changes = append(d.Changes, fmt.Sprintf("role %s → %s", granted.Role, req.Role))
			}
			if !sameScopes(req.Scopes, granted.Scopes) {
				d.Changes = append(d.Changes, fmt.Sprintf("scopes %s → %s", scopeList(granted.Scopes), scopeList(req.Scopes)))
			}
			if req.ClassName != granted.ClassName {
				d.Changes = append(d.Changes, fmt.Sprintf("class %s → %s", describeClass(granted.ClassName), describeClass(req.ClassName)))
			}
			d.Grant.Role, d.Grant.Scopes, d.Grant.ClassName = req.Role, req.Scopes, req.ClassName
		}
	}

	for _, v := range []*Violation{access, expiry, owner} {
		if v != nil {
			d.Refusals = append(d.Refusals, v)
		}
	}
	if len(d.Refusals) > 0 {
		msgs := make([]string, len(d.Refusals))
		for i, v := range d.Refusals {
			msgs[i] = v.Message
		}
		d.Refused = &Violation{Reason: d.Refusals[0].Reason, Message: strings.Join(msgs, "; ")}
	}
	return d
}

func sameScopes(a, b []keywardenv1alpha1.Scope) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func sameTime(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}

func scopeList(s []keywardenv1alpha1.Scope) string {
	if len(s) == 0 {
		return "[]"
	}
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = string(x)
	}
	slices.Sort(out)
	return "[" + strings.Join(out, " ") + "]"
}

func describeClass(n string) string {
	if n == "" {
		return "(built-in)"
	}
	return n
}

func moment(t *metav1.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
