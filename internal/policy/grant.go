package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/lifecycle"
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

// Granted is the grant of an issued key: the one recorded in its status,
// or, for a key issued by a release that did not record grants (no
// status.role), the one that release's verifier answered with: spec.owner,
// spec.role, spec.scopes or else status.scopes, and the expiry of
// spec.expiresAt, issuedAt plus spec.lifetime, or status.expiresAt.
func Granted(spec *keywardenv1alpha1.APIKeySpec, st *keywardenv1alpha1.APIKeyStatus) Grant {
	if st.Role != "" {
		return Grant{Owner: st.Owner, Role: st.Role, Scopes: st.Scopes, ExpiresAt: st.ExpiresAt, ClassName: st.ClassName}
	}
	g := Grant{Owner: spec.Owner, Role: spec.Role, Scopes: spec.Scopes, ClassName: st.ClassName}
	if len(g.Scopes) == 0 {
		g.Scopes = st.Scopes
	}
	g.ExpiresAt = lifecycle.ExpiresAt(spec, st.IssuedAt, st.ExpiresAt)
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

// AsSpec is the grant as a spec that asks for exactly it, to check it
// against a class.
func (g Grant) AsSpec() *keywardenv1alpha1.APIKeySpec {
	return &keywardenv1alpha1.APIKeySpec{Owner: g.Owner, Role: g.Role, Scopes: g.Scopes, ExpiresAt: g.ExpiresAt, ClassName: g.ClassName}
}

// Issue is the grant of a key issued at issuedAt under the policy. recorded
// is the expiry already recorded for the key (a reissue keeps it).
func (p Policy) Issue(spec *keywardenv1alpha1.APIKeySpec, issuedAt time.Time, recorded *metav1.Time) Grant {
	g := Grant{Owner: spec.Owner, Role: spec.Role, Scopes: p.EffectiveScopes(spec), ClassName: p.ClassName}
	switch {
	case spec.ExpiresAt != nil:
		g.ExpiresAt = spec.ExpiresAt.DeepCopy()
	case spec.Lifetime != nil:
		t := metav1.NewTime(issuedAt.Add(spec.Lifetime.Duration))
		g.ExpiresAt = &t
	case recorded != nil:
		g.ExpiresAt = recorded.DeepCopy()
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

// Requested is the grant that the spec of a key issued at issuedAt asks
// for, given its current grant. A spec that names no scopes asks for all of
// its role's scopes only when its role or class changes (a class that
// changes its roles never rewrites issued keys), and one that names no
// expiry keeps the granted expiry.
func (p Policy) Requested(spec *keywardenv1alpha1.APIKeySpec, granted Grant, issuedAt time.Time) Grant {
	r := Grant{Owner: spec.Owner, Role: spec.Role, Scopes: spec.Scopes, ExpiresAt: granted.ExpiresAt, ClassName: p.ClassName}
	if len(spec.Scopes) == 0 {
		r.Scopes = granted.Scopes
		if spec.Role != granted.Role || p.ClassName != granted.ClassName {
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
	// Refused says why the spec is not (wholly) granted; nil when the
	// grant is what the spec asks for. Its message is the same wherever the
	// change is refused: by the controller, or at apply time by the webhook.
	Refused *Violation
}

// RoomFor reports whether an owner may take one more active key: nil, or
// the refusal.
type RoomFor func(owner string) *Violation

// Decide judges a spec change to a key issued at issuedAt like the issuance
// of a new key: the role, scopes and class must fit the class the spec now
// names (pol, or resolveErr when it does not resolve); the expiry may be
// brought forward at any time and pushed back only within the class's
// maxLifetime from issuance; a new owner must have room under its limit.
// Each of the three parts is granted or refused on its own, and what is
// refused keeps its granted value: a change is never a silent widening.
func Decide(granted Grant, spec *keywardenv1alpha1.APIKeySpec, pol Policy, resolveErr *Violation, issuedAt time.Time, room RoomFor) Decision {
	req := pol.Requested(spec, granted, issuedAt)
	if resolveErr != nil {
		req.ClassName = granted.ClassName
		if spec.ClassName != "" {
			req.ClassName = spec.ClassName
		}
	}
	d := Decision{Grant: granted}
	var refused []*Violation

	if req.Role != granted.Role || req.ClassName != granted.ClassName || !sameScopes(req.Scopes, granted.Scopes) {
		v := resolveErr
		if v == nil {
			v = pol.CheckAccess(req.Role, req.Scopes)
		}
		if v != nil {
			refused = append(refused, v)
		} else {
			if req.Role != granted.Role {
				d.Changes = append(d.Changes, fmt.Sprintf("role %s → %s", granted.Role, req.Role))
			}
			if !sameScopes(req.Scopes, granted.Scopes) {
				d.Changes = append(d.Changes, fmt.Sprintf("scopes %s → %s", scopeList(granted.Scopes), scopeList(req.Scopes)))
			}
			if req.ClassName != granted.ClassName {
				d.Changes = append(d.Changes, fmt.Sprintf("class %s → %s", className(granted.ClassName), className(req.ClassName)))
			}
			d.Grant.Role, d.Grant.Scopes, d.Grant.ClassName = req.Role, req.Scopes, req.ClassName
		}
	}

	if !sameTime(req.ExpiresAt, granted.ExpiresAt) {
		sooner := req.ExpiresAt != nil && (granted.ExpiresAt == nil || req.ExpiresAt.Before(granted.ExpiresAt))
		var v *Violation
		if !sooner {
			if v = resolveErr; v == nil {
				v = pol.CheckExpiry(req.ExpiresAt, issuedAt)
			}
		}
		if v != nil {
			refused = append(refused, v)
		} else {
			d.Changes = append(d.Changes, fmt.Sprintf("expiry %s → %s", moment(granted.ExpiresAt), moment(req.ExpiresAt)))
			d.Grant.ExpiresAt = req.ExpiresAt
		}
	}

	if req.Owner != granted.Owner {
		if v := room(req.Owner); v != nil {
			refused = append(refused, v)
		} else {
			d.Changes = append(d.Changes, fmt.Sprintf("owner %s → %s", granted.Owner, req.Owner))
			d.Grant.Owner = req.Owner
		}
	}

	if len(refused) > 0 {
		msgs := make([]string, len(refused))
		for i, v := range refused {
			msgs[i] = v.Message
		}
		d.Refused = &Violation{Reason: refused[0].Reason, Message: strings.Join(msgs, "; ")}
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

func className(n string) string {
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
