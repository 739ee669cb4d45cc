package policy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(t0.Add(d)); return &t }

// roClass is the class both grant tables judge against: two roles, keys
// living at most a day.
func roClass() Policy {
	type scopes = []keywardenv1alpha1.Scope
	return FromClass(ptrTo(class("ro", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.Roles = []keywardenv1alpha1.ClassRole{
			{Name: "readonly", Scopes: scopes{"logs:read", "metrics:read"}},
			{Name: "standard", Scopes: scopes{"logs:read", "logs:write"}},
		}
		s.MaxLifetime = &keywardenv1alpha1.Duration{Duration: 24 * time.Hour}
	})))
}

func TestDecide(t *testing.T) {
	type scopes = []keywardenv1alpha1.Scope
	ro := roClass()
	open := FromClass(ptrTo(class("open", false, nil)))
	granted := Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(24 * time.Hour), ClassName: "ro"}
	// spec is what the granted key's manifest says, changed by mutate.
	spec := func(mutate func(*keywardenv1alpha1.APIKeySpec)) *keywardenv1alpha1.APIKeySpec {
		s := &keywardenv1alpha1.APIKeySpec{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"},
			Lifetime: &keywardenv1alpha1.Duration{Duration: 24 * time.Hour}, ClassName: "ro"}
		if mutate != nil {
			mutate(s)
		}
		return s
	}
	roomy := func(string) *Violation { return nil }
	full := func(owner string) *Violation { return LimitViolation(owner, "ns", 2, 2) }

	tests := []struct {
		name        string
		granted     Grant
		spec        *keywardenv1alpha1.APIKeySpec
		pol         Policy
		resolveErr  *Violation
		room        RoomFor
		want        Grant
		wantChanges []string
		wantReason  string
		wantMessage string
	}{
		{name: "nothing changed", spec: spec(nil), want: granted},
		{name: "a display name or trackLastUsed is no change", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.DisplayName = "x"; s.TrackLastUsed = true }), want: granted},
		{
			name: "a role the class allows", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Role = "standard"; s.Scopes = scopes{"logs:write"} }),
			want:        Grant{Owner: "a@example.com", Role: "standard", Scopes: scopes{"logs:write"}, ExpiresAt: at(24 * time.Hour), ClassName: "ro"},
			wantChanges: []string{"role readonly → standard", "scopes [logs:read] → [logs:write]"},
		},
		{
			name: "a role the class does not allow", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Role = "admin" }),
			want: granted, wantReason: "RoleNotAllowed",
			wantMessage: `role "admin" is not allowed by APIKeyClass "ro"; allowed roles: readonly, standard`,
		},
		{
			name: "a scope the role may not grant", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Scopes = scopes{"logs:read", "users:admin"} }),
			want: granted, wantReason: "ScopeNotAllowed",
			wantMessage: `scope "users:admin" is not allowed for role "readonly" by APIKeyClass "ro"; it allows logs:read, metrics:read`,
		},
		{
			name: "fewer scopes", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Scopes = nil }),
			want: granted, // naming none keeps the granted scopes while the role stays
		},
		{
			name: "a role change with no scopes named takes the role's scopes", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Role = "standard"; s.Scopes = nil }),
			want:        Grant{Owner: "a@example.com", Role: "standard", Scopes: scopes{"logs:read", "logs:write"}, ExpiresAt: at(24 * time.Hour), ClassName: "ro"},
			wantChanges: []string{"role readonly → standard", "scopes [logs:read] → [logs:read logs:write]"},
		},
		{
			name: "expiry brought forward", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Lifetime = &keywardenv1alpha1.Duration{Duration: time.Hour} }),
			want:        Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(time.Hour), ClassName: "ro"},
			wantChanges: []string{"expiry 2026-11-02T00:00:00Z → 2026-11-01T01:00:00Z"},
		},
		{
			name:        "expiry pushed back within maxLifetime from issuance",
			granted:     Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(time.Hour), ClassName: "ro"},
			spec:        spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Lifetime = nil; s.ExpiresAt = at(20 * time.Hour) }),
			want:        Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(20 * time.Hour), ClassName: "ro"},
			wantChanges: []string{"expiry 2026-11-01T01:00:00Z → 2026-11-01T20:00:00Z"},
		},
		{
			name: "expiry pushed back past maxLifetime from issuance", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) {
				s.Lifetime = &keywardenv1alpha1.Duration{Duration: 87600 * time.Hour}
			}),
			want: granted, wantReason: "LifetimeExceedsMax",
			wantMessage: `lifetime 87600h0m0s exceeds the maximum of 24h0m0s set by APIKeyClass "ro"`,
		},
		{
			name: "no expiry named keeps the granted one", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Lifetime = nil }),
			want: granted,
		},
		{
			name: "expiry pushed back under a class without maxLifetime", granted: Grant{Owner: "a@example.com", Role: "readonly", ExpiresAt: at(time.Hour), ClassName: "open"},
			spec: &keywardenv1alpha1.APIKeySpec{Owner: "a@example.com", Role: "readonly", ClassName: "open", ExpiresAt: at(9000 * time.Hour)}, pol: open,
			want:        Grant{Owner: "a@example.com", Role: "readonly", ExpiresAt: at(9000 * time.Hour), ClassName: "open"},
			wantChanges: []string{"expiry 2026-11-01T01:00:00Z → 2027-11-11T00:00:00Z"},
		},
		{
			name: "a new owner with room", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Owner = "b@example.com" }),
			want:        Grant{Owner: "b@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(24 * time.Hour), ClassName: "ro"},
			wantChanges: []string{"owner a@example.com → b@example.com"},
		},
		{
			name: "a new owner without room", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Owner = "b@example.com" }), room: full,
			want: granted, wantReason: "ActiveKeyLimit",
			wantMessage: "owner b@example.com already holds 2 active keys (limit 2) in namespace ns; revoke or delete one of them first",
		},
		{
			// kubectl patch apikey k -p '{"spec":{"role":"admin","scopes":["users:admin"],"lifetime":"87600h"}}'
			name: "the whole widening at once",
			spec: spec(func(s *keywardenv1alpha1.APIKeySpec) {
				s.Role, s.Scopes, s.Lifetime = "admin", scopes{"users:admin"}, &keywardenv1alpha1.Duration{Duration: 87600 * time.Hour}
			}),
			want: granted, wantReason: "RoleNotAllowed",
			wantMessage: `role "admin" is not allowed by APIKeyClass "ro"; allowed roles: readonly, standard; lifetime 87600h0m0s exceeds the maximum of 24h0m0s set by APIKeyClass "ro"`,
		},
		{
			name: "a refused role does not keep a shorter expiry from being granted",
			spec: spec(func(s *keywardenv1alpha1.APIKeySpec) {
				s.Role = "admin"
				s.Lifetime = &keywardenv1alpha1.Duration{Duration: time.Hour}
			}),
			want:        Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(time.Hour), ClassName: "ro"},
			wantChanges: []string{"expiry 2026-11-02T00:00:00Z → 2026-11-01T01:00:00Z"},
			wantReason:  "RoleNotAllowed",
		},
		{
			name: "moving to a class that does not exist", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.ClassName = "gone" }),
			resolveErr: &Violation{"ClassNotFound", `APIKeyClass "gone" does not exist; the key is issued once it does`},
			want:       granted, wantReason: "ClassNotFound",
		},
		{
			name: "its own class deleted, nothing asked", spec: spec(nil),
			resolveErr: &Violation{"ClassNotFound", `APIKeyClass "ro" does not exist`},
			want:       granted,
		},
		{
			name:       "its own class deleted, no scopes named, nothing asked",
			granted:    Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read", "metrics:read"}, ExpiresAt: at(time.Hour), ClassName: "ro"},
			spec:       &keywardenv1alpha1.APIKeySpec{Owner: "a@example.com", Role: "readonly"},
			resolveErr: &Violation{"ClassNotFound", `APIKeyClass "ro" does not exist`},
			want:       Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read", "metrics:read"}, ExpiresAt: at(time.Hour), ClassName: "ro"},
		},
		{
			name: "a new owner while the class does not resolve", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Owner = "b@example.com" }),
			resolveErr: &Violation{"ClassNotFound", `APIKeyClass "ro" does not exist`},
			want:       granted, wantReason: "ClassNotFound", wantMessage: `APIKeyClass "ro" does not exist`,
		},
		{
			name:        "moving a key that never expires into a class with a maximum lifetime",
			granted:     Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ClassName: "open"},
			spec:        spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Lifetime = nil }),
			want:        Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ClassName: "open"},
			wantReason:  "LifetimeExceedsMax",
			wantMessage: `a key that never expires exceeds the maximum lifetime of 24h0m0s set by APIKeyClass "ro"`,
		},
		{
			name:    "moving a key into a class whose limit its owner has reached",
			granted: Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(time.Hour), ClassName: "open"},
			spec:    spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Lifetime = nil }), room: full,
			want:       Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(time.Hour), ClassName: "open"},
			wantReason: "ActiveKeyLimit",
		},
		{
			name: "moving to a class that allows it", spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.ClassName = "open" }), pol: open,
			want:        Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read"}, ExpiresAt: at(24 * time.Hour), ClassName: "open"},
			wantChanges: []string{"class ro → open"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := granted
			if tt.granted.Role != "" {
				g = tt.granted
			}
			pol := ro
			if tt.pol.ClassName != "" {
				pol = tt.pol
			}
			if tt.resolveErr != nil {
				pol = Policy{}
			}
			room := roomy
			if tt.room != nil {
				room = tt.room
			}
			d := Decide(g, tt.spec, pol, tt.resolveErr, t0, room)
			if (d.Refused != nil) != (len(d.Refusals) > 0) {
				t.Errorf("Refused %v with Refusals %v", d.Refused, d.Refusals)
			}
			if !d.Grant.Equal(tt.want) {
				t.Errorf("grant = %+v, want %+v", d.Grant, tt.want)
			}
			if strings.Join(d.Changes, "; ") != strings.Join(tt.wantChanges, "; ") {
				t.Errorf("changes = %q, want %q", d.Changes, tt.wantChanges)
			}
			switch {
			case tt.wantReason == "" && d.Refused != nil:
				t.Errorf("refused: %v", d.Refused)
			case tt.wantReason != "" && (d.Refused == nil || d.Refused.Reason != tt.wantReason):
				t.Errorf("refusal = %v, want reason %s", d.Refused, tt.wantReason)
			case tt.wantMessage != "" && d.Refused.Message != tt.wantMessage:
				t.Errorf("message = %q\nwant      %q", d.Refused.Message, tt.wantMessage)
			}
			if d.Refused == nil && tt.wantReason == "" && len(tt.wantChanges) == 0 && !d.Grant.Equal(g) {
				t.Error("a spec that asks nothing new changed the grant")
			}
		})
	}
}

func TestIssueAndResolveIssued(t *testing.T) {
	c := class("c", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.Roles = []keywardenv1alpha1.ClassRole{{Name: "readonly", Scopes: []keywardenv1alpha1.Scope{"a", "b"}}}
		s.DefaultLifetime = &keywardenv1alpha1.Duration{Duration: time.Hour}
	})
	pol := FromClass(&c)
	g := pol.Issue(&keywardenv1alpha1.APIKeySpec{Owner: "o", Role: "readonly"}, t0)
	want := Grant{Owner: "o", Role: "readonly", Scopes: []keywardenv1alpha1.Scope{"a", "b"}, ExpiresAt: at(time.Hour), ClassName: "c"}
	if !g.Equal(want) {
		t.Errorf("Issue = %+v, want %+v", g, want)
	}
	if g := pol.Issue(&keywardenv1alpha1.APIKeySpec{Owner: "o", Role: "readonly", Lifetime: &keywardenv1alpha1.Duration{Duration: time.Minute}}, t0); !sameTime(g.ExpiresAt, at(time.Minute)) {
		t.Errorf("expiry with a lifetime = %v, want a minute after issuance", g.ExpiresAt)
	}

	def := class("newdefault", true, nil)
	classes := []keywardenv1alpha1.APIKeyClass{c, def}
	for _, tc := range []struct {
		name, specClass, grantedClass, want string
	}{
		{"the class the spec names", "c", "", "c"},
		{"the class it was issued under, not the new default", "", "c", "c"},
		{"issued under the built-in policy, it stays there", "", "", ""},
	} {
		p, v := ResolveIssued(&keywardenv1alpha1.APIKeySpec{ClassName: tc.specClass}, Grant{ClassName: tc.grantedClass}, classes)
		if v != nil || p.ClassName != tc.want {
			t.Errorf("%s: ResolveIssued = %q, %v; want %q", tc.name, p.ClassName, v, tc.want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestDecisionRefusesEachPart(t *testing.T) {
	pol := FromClass(ptrTo(class("ro", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.Roles = []keywardenv1alpha1.ClassRole{{Name: "readonly"}}
	})))
	granted := Grant{Owner: "a", Role: "readonly", ClassName: "ro"}
	d := Decide(granted, &keywardenv1alpha1.APIKeySpec{Owner: "b", Role: "admin", ClassName: "ro"}, pol, nil, t0,
		func(owner string) *Violation { return LimitViolation(owner, "ns", 1, 1) })
	if !d.Refuses("RoleNotAllowed") || !d.Refuses("ActiveKeyLimit") || d.Refuses("LifetimeExceedsMax") {
		t.Errorf("refusals %v, want the role and the owner", d.Refusals)
	}
	if d.Refused.Reason != "RoleNotAllowed" {
		t.Errorf("reason %q, want the first refusal's", d.Refused.Reason)
	}
}

// A key issued before grants were recorded gets its first grant by judging
// its spec, as it stands at the upgrade, against the class it was issued
// under: an edit made just before the upgrade widens nothing.
func TestFirstGrantOfAKeyIssuedBeforeGrants(t *testing.T) {
	type scopes = []keywardenv1alpha1.Scope
	ro := roClass()
	// What that release wrote: no owner, no role; scopes and expiry as
	// its last pass mirrored them from the spec.
	legacy := func(expiresAt *metav1.Time) *keywardenv1alpha1.APIKeyStatus {
		return &keywardenv1alpha1.APIKeyStatus{KeyHash: "sha256:x", IssuedAt: at(0), ExpiresAt: expiresAt, ClassName: "ro",
			Scopes: scopes{"logs:read", "users:admin"}}
	}
	spec := func(mutate func(*keywardenv1alpha1.APIKeySpec)) *keywardenv1alpha1.APIKeySpec {
		s := &keywardenv1alpha1.APIKeySpec{Owner: "a@example.com", Role: "readonly", ClassName: "ro"}
		if mutate != nil {
			mutate(s)
		}
		return s
	}
	roomy := func(string) *Violation { return nil }
	tests := []struct {
		name       string
		spec       *keywardenv1alpha1.APIKeySpec
		st         *keywardenv1alpha1.APIKeyStatus
		resolveErr *Violation
		want       Grant
		wantReason string
	}{
		{
			name: "a spec the class allows is granted as it is",
			spec: spec(nil), st: legacy(at(12 * time.Hour)),
			want: Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read", "metrics:read"}, ExpiresAt: at(12 * time.Hour), ClassName: "ro"},
		},
		{
			name: "a role the class refuses is not granted: no role, no scopes",
			spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Role = "admin" }), st: legacy(at(12 * time.Hour)),
			want: Grant{Owner: "a@example.com", ExpiresAt: at(12 * time.Hour), ClassName: "ro"}, wantReason: "RoleNotAllowed",
		},
		{
			name: "scopes the role may not grant are not granted, whatever status mirrored",
			spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.Scopes = scopes{"logs:read", "users:admin"} }), st: legacy(at(12 * time.Hour)),
			want: Grant{Owner: "a@example.com", ExpiresAt: at(12 * time.Hour), ClassName: "ro"}, wantReason: "ScopeNotAllowed",
		},
		{
			name: "a lifetime past the class's maximum keeps the maximum",
			spec: spec(func(s *keywardenv1alpha1.APIKeySpec) {
				s.Lifetime = &keywardenv1alpha1.Duration{Duration: 87600 * time.Hour}
			}),
			st:   legacy(at(87600 * time.Hour)),
			want: Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read", "metrics:read"}, ExpiresAt: at(24 * time.Hour), ClassName: "ro"}, wantReason: "LifetimeExceedsMax",
		},
		{
			name: "a key that never expires gets the class's maximum",
			spec: spec(nil), st: legacy(nil),
			want: Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read", "metrics:read"}, ExpiresAt: at(24 * time.Hour), ClassName: "ro"},
		},
		{
			name: "a key older than the class's maximum is not expired by the upgrade: it keeps the maximum from now",
			spec: spec(nil), st: func() *keywardenv1alpha1.APIKeyStatus {
				st := legacy(nil)
				st.IssuedAt = at(-30 * 24 * time.Hour)
				return st
			}(),
			want: Grant{Owner: "a@example.com", Role: "readonly", Scopes: scopes{"logs:read", "metrics:read"}, ExpiresAt: at(24 * time.Hour), ClassName: "ro"},
		},
		{
			name: "a class that does not resolve grants nothing",
			spec: spec(func(s *keywardenv1alpha1.APIKeySpec) { s.ClassName = "missing" }), st: legacy(at(12 * time.Hour)),
			resolveErr: &Violation{Reason: "ClassNotFound", Message: "APIKeyClass \"missing\" not found"},
			want:       Grant{Owner: "a@example.com", ExpiresAt: at(12 * time.Hour), ClassName: "ro"}, wantReason: "ClassNotFound",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := ro
			if tt.resolveErr != nil {
				pol = Policy{}
			}
			base := Baseline(tt.spec, tt.st, &ro, t0)
			if base.Role != "" || len(base.Scopes) != 0 {
				t.Fatalf("the baseline of a key without a grant takes a role or scopes: %+v", base)
			}
			d := Decide(base, tt.spec, pol, tt.resolveErr, t0, roomy)
			if !d.Grant.Equal(tt.want) {
				t.Errorf("grant = %+v, want %+v", d.Grant, tt.want)
			}
			switch {
			case tt.wantReason == "" && d.Refused != nil:
				t.Errorf("refused: %v", d.Refused)
			case tt.wantReason != "" && (d.Refused == nil || d.Refused.Reason != tt.wantReason):
				t.Errorf("refusal = %v, want reason %s", d.Refused, tt.wantReason)
			}
		})
	}

	// A recorded grant is the baseline as it is, a grant of no role too.
	st := &keywardenv1alpha1.APIKeyStatus{Owner: "b@example.com", ClassName: "ro", ExpiresAt: at(time.Hour)}
	if g := Baseline(spec(nil), st, &ro, t0); g.Owner != "b@example.com" || g.Role != "" || !sameTime(g.ExpiresAt, at(time.Hour)) {
		t.Errorf("Baseline of a recorded grant = %+v", g)
	}
}
