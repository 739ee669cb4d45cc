// Package policy holds the pure rules of APIKeyClasses: which class applies
// to a key, whether the key fits it, its effective scopes and lifetime, and
// the per-owner active-key limit. Nothing here talks to the API server.
package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/near"
)

// Policy is a class's rules with its defaults applied.
type Policy struct {
	// ClassName is the class's name, empty for the built-in defaults.
	ClassName string
	// KeyPrefix starts every key issued under the policy.
	KeyPrefix string
	// Roles maps each allowed role to the scopes it may grant; nil allows
	// any role and scope.
	Roles map[string][]keywardenv1alpha1.Scope
	// DefaultLifetime and MaxLifetime are zero when unset.
	DefaultLifetime, MaxLifetime time.Duration
	// MaxActiveKeysPerOwner is the per-owner limit, counted in the key's
	// namespace, or, with LimitAcrossNamespaces, over the owner's keys of
	// the class in every namespace.
	MaxActiveKeysPerOwner int
	LimitAcrossNamespaces bool
	// ExpiryWarning is how long before its expiry a key is marked
	// ExpiringSoon; zero for never.
	ExpiryWarning time.Duration
	// RotationEvery and GracePeriod are the rotation schedule and grace
	// period of keys that set none (zero: no schedule; the grace defaults
	// to 24h); MaxRotationEvery and MaxGracePeriod bound them, zero when
	// unbounded.
	RotationEvery, MaxRotationEvery time.Duration
	GracePeriod, MaxGracePeriod     time.Duration
	// MinRotationEvery is the shortest schedule a key may have.
	MinRotationEvery time.Duration
	// Rotation is the class's rotation rules as written, which an issued
	// key's status records (status.classRotation); nil when it sets none.
	Rotation *keywardenv1alpha1.ClassRotation
	// Namespaces selects the namespaces whose keys may use the policy; nil
	// admits every namespace. namespacesInvalid says why the class's
	// selector could not be read, when it could not: then no namespace is
	// admitted.
	Namespaces        labels.Selector
	namespacesInvalid string
}

// BuiltIn is the policy when no class applies: prefix kw_, any role and
// scope, no lifetime bound, 10 active keys per owner, a warning 7 days
// before expiry.
func BuiltIn() Policy {
	return Policy{
		KeyPrefix: keys.DefaultPrefix, MaxActiveKeysPerOwner: keywardenv1alpha1.DefaultMaxActiveKeysPerOwner,
		ExpiryWarning: keywardenv1alpha1.DefaultExpiryWarning, GracePeriod: keywardenv1alpha1.DefaultGracePeriod,
		MinRotationEvery: keywardenv1alpha1.DefaultMinRotationEvery,
	}
}

// FromClass is the policy of a class.
func FromClass(c *keywardenv1alpha1.APIKeyClass) Policy {
	p := BuiltIn()
	p.ClassName = c.Name
	if c.Spec.KeyPrefix != "" {
		p.KeyPrefix = c.Spec.KeyPrefix
	}
	if len(c.Spec.Roles) > 0 {
		p.Roles = make(map[string][]keywardenv1alpha1.Scope, len(c.Spec.Roles))
		for _, r := range c.Spec.Roles {
			p.Roles[r.Name] = r.Scopes
		}
	}
	if d := c.Spec.DefaultLifetime; d != nil {
		p.DefaultLifetime = d.Duration
	}
	if d := c.Spec.MaxLifetime; d != nil {
		p.MaxLifetime = d.Duration
	}
	if d := c.Spec.ExpiryWarning; d != nil {
		p.ExpiryWarning = d.Duration
	}
	p.setRotation(c.Spec.Rotation)
	if n := c.Spec.MaxActiveKeysPerOwner; n != nil {
		p.MaxActiveKeysPerOwner = int(*n)
	}
	p.LimitAcrossNamespaces = c.Spec.OwnerLimitScope == keywardenv1alpha1.OwnerLimitCluster
	if sel := c.Spec.NamespaceSelector; sel != nil {
		if ns, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			p.Namespaces, p.namespacesInvalid = labels.Nothing(), err.Error()
		} else {
			p.Namespaces = ns
		}
	}
	return p
}

// setRotation takes a class's rotation rules.
func (p *Policy) setRotation(r *keywardenv1alpha1.ClassRotation) {
	p.Rotation = r
	if r == nil {
		return
	}
	for _, f := range []struct {
		from *keywardenv1alpha1.Duration
		to   *time.Duration
	}{{r.Every, &p.RotationEvery}, {r.MaxEvery, &p.MaxRotationEvery}, {r.GracePeriod, &p.GracePeriod}, {r.MaxGracePeriod, &p.MaxGracePeriod}} {
		if f.from != nil {
			*f.to = f.from.Duration
		}
	}
	// The default minimum gives way to a schedule the class sets itself.
	for _, d := range []*keywardenv1alpha1.Duration{r.Every, r.MaxEvery} {
		if d != nil && d.Duration < p.MinRotationEvery {
			p.MinRotationEvery = d.Duration
		}
	}
	if r.MinEvery != nil {
		p.MinRotationEvery = r.MinEvery.Duration
	}
}

// Recorded is the policy of an issued key whose class (className) is
// gone: the built-in defaults with the class's rotation rules as the
// key's status recorded them (none recorded: the built-in rotation
// rules). Its other rules do not apply to an issued key: a change to its
// grant is refused while its class does not resolve.
func Recorded(className string, r *keywardenv1alpha1.ClassRotation) Policy {
	p := BuiltIn()
	p.ClassName = className
	p.setRotation(r)
	return p
}

// NamespaceSelectorProblem says why a class's namespaceSelector cannot be
// evaluated; empty when it can (or is unset).
func NamespaceSelectorProblem(c *keywardenv1alpha1.APIKeyClass) string {
	if p := FromClass(c); p.namespacesInvalid != "" {
		return fmt.Sprintf("spec.namespaceSelector is invalid (%s): the class admits no namespace until it is fixed", p.namespacesInvalid)
	}
	return ""
}

// ChecksNamespace reports whether the policy admits only some namespaces,
// so that a namespace's labels must be read to check a key.
func (p Policy) ChecksNamespace() bool { return p.Namespaces != nil }

// CheckNamespace reports whether the policy admits keys of the namespace,
// which has the given labels.
func (p Policy) CheckNamespace(namespace string, nsLabels map[string]string) *Violation {
	switch {
	case p.Namespaces == nil:
		return nil
	case p.namespacesInvalid != "":
		return &Violation{keywardenv1alpha1.ReasonInvalidNamespaceSelector, fmt.Sprintf(
			"APIKeyClass %q has an invalid spec.namespaceSelector (%s) and admits no namespace until it is fixed", p.ClassName, p.namespacesInvalid)}
	case !p.Namespaces.Matches(labels.Set(nsLabels)):
		return &Violation{keywardenv1alpha1.ReasonNamespaceNotAllowed, fmt.Sprintf(
			"APIKeyClass %q admits the keys of namespaces labelled %s; namespace %q is not: label it, or use another class",
			p.ClassName, describeSelector(p.Namespaces), namespace)}
	}
	return nil
}

// describeSelector writes a selector as kubectl's -l takes it.
func describeSelector(s labels.Selector) string {
	if s.Empty() {
		return "anything"
	}
	return s.String()
}

// Violation is why a key does not fit its class: a condition reason and a
// message that names the offending value.
type Violation struct {
	Reason  string
	Message string
}

func (v *Violation) Error() string { return v.Message }

// Resolve returns the policy that applies to a key: its spec.className's
// class, else the one default class, else the built-in defaults.
func Resolve(className string, classes []keywardenv1alpha1.APIKeyClass) (Policy, *Violation) {
	if className != "" {
		for i := range classes {
			if classes[i].Name == className {
				return FromClass(&classes[i]), nil
			}
		}
		return Policy{}, &Violation{keywardenv1alpha1.ReasonClassNotFound, classNotFound(className, classes)}
	}
	defaults := DefaultClasses(classes)
	switch len(defaults) {
	case 0:
		return BuiltIn(), nil
	case 1:
		return FromClass(defaults[0]), nil
	}
	return Policy{}, &Violation{keywardenv1alpha1.ReasonAmbiguousDefaultClass, AmbiguousDefaultMessage(defaults)}
}

// ClassOf is the class a key counts under for an owner's limit: the
// class it was issued under, else the class its spec names, else the one
// default class (empty when there is none, or more than one).
func ClassOf(k *keywardenv1alpha1.APIKey, defaultClass string) string {
	switch {
	case k.Status.ClassName != "":
		return k.Status.ClassName
	case k.Spec.ClassName != "":
		return k.Spec.ClassName
	}
	return defaultClass
}

// DefaultClassName is the name of the one default class, or "".
func DefaultClassName(classes []keywardenv1alpha1.APIKeyClass) string {
	if d := DefaultClasses(classes); len(d) == 1 {
		return d[0].Name
	}
	return ""
}

// DefaultClasses returns the classes annotated as default, by name.
func DefaultClasses(classes []keywardenv1alpha1.APIKeyClass) []*keywardenv1alpha1.APIKeyClass {
	var out []*keywardenv1alpha1.APIKeyClass
	for i := range classes {
		if classes[i].IsDefault() {
			out = append(out, &classes[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AmbiguousDefaultMessage says which classes all claim to be the default.
func AmbiguousDefaultMessage(defaults []*keywardenv1alpha1.APIKeyClass) string {
	names := make([]string, len(defaults))
	for i, c := range defaults {
		names[i] = c.Name
	}
	return fmt.Sprintf("APIKeyClasses %s are all annotated %s=true; keep exactly one default class or set spec.className",
		strings.Join(names, ", "), keywardenv1alpha1.AnnotationDefaultClass)
}

// Check reports the first rule of the policy that the key breaks, for a key
// that would be issued at issuedAt: its role, its scopes, its lifetime, its
// rotation.
func (p Policy) Check(spec *keywardenv1alpha1.APIKeySpec, issuedAt time.Time) *Violation {
	if v := ExpiryInPast(spec.ExpiresAt, issuedAt); v != nil {
		return v
	}
	if v := p.CheckAccess(spec.Role, spec.Scopes); v != nil {
		return v
	}
	if p.MaxLifetime > 0 {
		if lt := p.lifetime(spec, issuedAt); lt > p.MaxLifetime {
			return p.lifetimeViolation(lt)
		}
	}
	return p.CheckRotation(spec.Rotation)
}

// CheckRotation reports whether a key's rotation settings fit the
// policy: a schedule no longer than maxEvery when the class requires one,
// and a grace period no longer than maxGracePeriod.
func (p Policy) CheckRotation(r *keywardenv1alpha1.Rotation) *Violation {
	if p.MaxRotationEvery > 0 && r != nil && r.Every != nil && r.Every.Duration > p.MaxRotationEvery {
		return &Violation{keywardenv1alpha1.ReasonRotationRequired,
			fmt.Sprintf("rotation every %s is less often than the %s required by %s", r.Every.Duration, p.MaxRotationEvery, p.describe())}
	}
	if p.MinRotationEvery > 0 && r != nil && r.Every != nil && r.Every.Duration < p.MinRotationEvery {
		return &Violation{keywardenv1alpha1.ReasonRotationTooFrequent,
			fmt.Sprintf("rotation every %s is more often than the %s allowed by %s (rotation.minEvery)", r.Every.Duration, p.MinRotationEvery, p.describe())}
	}
	if p.MaxGracePeriod > 0 && r != nil && r.GracePeriod != nil && r.GracePeriod.Duration > p.MaxGracePeriod {
		return &Violation{keywardenv1alpha1.ReasonGracePeriodExceedsMax,
			fmt.Sprintf("grace period %s exceeds the maximum of %s set by %s", r.GracePeriod.Duration, p.MaxGracePeriod, p.describe())}
	}
	return nil
}

// RotationSchedule is how often the key rotates: its own schedule, else
// the class's, else its maximum; zero for never. A schedule longer than
// the class's maximum, or shorter than its minimum, is held to it.
func (p Policy) RotationSchedule(r *keywardenv1alpha1.Rotation) time.Duration {
	every := p.RotationEvery
	if r != nil && r.Every != nil {
		every = r.Every.Duration
	}
	if p.MaxRotationEvery > 0 && (every == 0 || every > p.MaxRotationEvery) {
		every = p.MaxRotationEvery
	}
	if every > 0 && every < p.MinRotationEvery {
		every = p.MinRotationEvery
	}
	return every
}

// RotationGrace is how long a key the rotation replaced stays valid: the
// key's own grace period, else the class's, else 24h, held to the class's
// maximum.
func (p Policy) RotationGrace(r *keywardenv1alpha1.Rotation) time.Duration {
	grace := p.GracePeriod
	if r != nil && r.GracePeriod != nil {
		grace = r.GracePeriod.Duration
	}
	if p.MaxGracePeriod > 0 && grace > p.MaxGracePeriod {
		grace = p.MaxGracePeriod
	}
	return grace
}

// CheckAccess reports whether the policy lets a key have the role and the
// scopes.
func (p Policy) CheckAccess(role string, scopes []keywardenv1alpha1.Scope) *Violation {
	if p.Roles == nil {
		return nil
	}
	allowed, ok := p.Roles[role]
	if !ok {
		return &Violation{keywardenv1alpha1.ReasonRoleNotAllowed,
			fmt.Sprintf("role %q is not allowed by %s; allowed roles: %s", role, p.describe(), strings.Join(p.roleNames(), ", "))}
	}
	for _, s := range scopes {
		if !slices.Contains(allowed, s) {
			offered := "it allows no scope"
			if len(allowed) > 0 {
				names := make([]string, len(allowed))
				for i, a := range allowed {
					names[i] = string(a)
				}
				offered = "it allows " + strings.Join(names, ", ")
			}
			return &Violation{keywardenv1alpha1.ReasonScopeNotAllowed,
				fmt.Sprintf("scope %q is not allowed for role %q by %s; %s", s, role, p.describe(), offered)}
		}
	}
	return nil
}

// ExpiryInPast refuses a key declared with an expiry that has passed by
// at: nothing it could be issued for.
func ExpiryInPast(expiresAt *metav1.Time, at time.Time) *Violation {
	if expiresAt == nil || expiresAt.After(at) {
		return nil
	}
	return &Violation{keywardenv1alpha1.ReasonExpiryInPast,
		fmt.Sprintf("spec.expiresAt %s is in the past: set a later expiresAt, or a lifetime (such as 30d) instead",
			expiresAt.UTC().Format(time.RFC3339))}
}

// CheckExpiry reports whether a key issued at issuedAt may live until
// expiresAt (nil: never expire) under the policy's maxLifetime.
func (p Policy) CheckExpiry(expiresAt *metav1.Time, issuedAt time.Time) *Violation {
	if p.MaxLifetime == 0 {
		return nil
	}
	if expiresAt == nil {
		return &Violation{keywardenv1alpha1.ReasonLifetimeExceedsMax,
			fmt.Sprintf("a key that never expires exceeds the maximum lifetime of %s set by %s", p.MaxLifetime, p.describe())}
	}
	if lt := expiresAt.Sub(issuedAt); lt > p.MaxLifetime {
		return p.lifetimeViolation(lt)
	}
	return nil
}

func (p Policy) lifetimeViolation(lt time.Duration) *Violation {
	return &Violation{keywardenv1alpha1.ReasonLifetimeExceedsMax,
		fmt.Sprintf("lifetime %s exceeds the maximum of %s set by %s", lt.Round(time.Second), p.MaxLifetime, p.describe())}
}

// LimitViolation is the refusal of a key, or of a reassignment, that would
// give the owner more active keys than the limit.
func LimitViolation(owner, namespace string, ahead, limit int) *Violation {
	return &Violation{keywardenv1alpha1.ReasonActiveKeyLimit,
		fmt.Sprintf("owner %s already holds %d active keys (limit %d) in namespace %s; revoke or delete one of them first", owner, ahead, limit, namespace)}
}

// Limit is the refusal of a key over its owner's limit under p: in the
// namespace, or across namespaces when p counts there.
func (p Policy) Limit(owner, namespace string, ahead int) *Violation {
	if !p.LimitAcrossNamespaces {
		return LimitViolation(owner, namespace, ahead, p.MaxActiveKeysPerOwner)
	}
	return &Violation{keywardenv1alpha1.ReasonActiveKeyLimit,
		fmt.Sprintf("owner %s already holds %d active keys of %s (limit %d, counted in every namespace); revoke or delete one of them first", owner, ahead, p.describe(), p.MaxActiveKeysPerOwner)}
}

// lifetime is how long the key would live if issued at issuedAt.
func (p Policy) lifetime(spec *keywardenv1alpha1.APIKeySpec, issuedAt time.Time) time.Duration {
	switch {
	case spec.ExpiresAt != nil:
		return spec.ExpiresAt.Sub(issuedAt)
	case spec.Lifetime != nil:
		return spec.Lifetime.Duration
	}
	return p.DefaultLifetime // the max applies otherwise; see ExpiresAt
}

// ExpiresAt is the expiry recorded for a key issued at issuedAt when its
// spec sets none: the class's default lifetime, else its maximum, else none.
func (p Policy) ExpiresAt(spec *keywardenv1alpha1.APIKeySpec, issuedAt time.Time) *metav1.Time {
	if spec.ExpiresAt != nil || spec.Lifetime != nil {
		return nil
	}
	for _, d := range []time.Duration{p.DefaultLifetime, p.MaxLifetime} {
		if d > 0 {
			t := metav1.NewTime(issuedAt.Add(d))
			return &t
		}
	}
	return nil
}

// EffectiveScopes are the key's scopes, or all of its role's when it names
// none.
func (p Policy) EffectiveScopes(spec *keywardenv1alpha1.APIKeySpec) []keywardenv1alpha1.Scope {
	if len(spec.Scopes) > 0 || p.Roles == nil {
		return spec.Scopes
	}
	return p.Roles[spec.Role]
}

func (p Policy) describe() string {
	if p.ClassName == "" {
		return "the built-in policy"
	}
	return fmt.Sprintf("APIKeyClass %q", p.ClassName)
}

func (p Policy) roleNames() []string {
	names := make([]string, 0, len(p.Roles))
	for n := range p.Roles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Holder is what the active-key limit needs to know of one of an owner's
// keys.
type Holder struct {
	UID     types.UID
	Created time.Time
	// Issued is set for a key whose hash is recorded.
	Issued bool
	// Gone is set for a key that no longer counts: expired, revoked or
	// being deleted.
	Gone bool
}

// Admit decides whether a key may be issued under an owner's limit, given
// the owner's other keys in the namespace. Issued keys keep their places;
// keys waiting to be issued (pending or refused) queue by creation time,
// then UID. A key is admitted while the issued keys and the keys ahead of
// it in the queue number fewer than the limit. ahead is that number.
func Admit(self Holder, others []Holder, limit int) (ok bool, ahead int) {
	for _, o := range others {
		switch {
		case o.Gone || o.UID == self.UID:
		case o.Issued:
			ahead++
		case o.Created.Before(self.Created) || o.Created.Equal(self.Created) && o.UID < self.UID:
			ahead++
		}
	}
	return ahead < limit, ahead
}

// maxClassesNamed bounds the classes a refusal names.
const maxClassesNamed = 10

// classNotFound says that the class a key names does not exist, and which
// classes it may have meant: the closest name and the others, among the
// classes every namespace may use (those that select namespaces are
// other teams' business, and are not named to whoever reads the key).
func classNotFound(className string, classes []keywardenv1alpha1.APIKeyClass) string {
	var open []string
	for i := range classes {
		if sel := classes[i].Spec.NamespaceSelector; sel == nil || len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
			open = append(open, classes[i].Name)
		}
	}
	slices.Sort(open)
	hint := "no class is open to every namespace: ask an admin which class to use, or leave className out for the default"
	if len(open) > 0 {
		named := open
		if len(named) > maxClassesNamed {
			named = append(slices.Clone(named[:maxClassesNamed]), "…")
		}
		hint = "classes: " + strings.Join(named, ", ")
		if c := near.Closest(className, open); c != "" {
			hint = fmt.Sprintf("did you mean %q? %s", c, hint)
		}
	}
	return fmt.Sprintf("APIKeyClass %q does not exist (%s); the key is issued once it does", className, hint)
}
