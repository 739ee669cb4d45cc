package policy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func class(name string, isDefault bool, mutate func(*keywardenv1alpha1.APIKeyClassSpec)) keywardenv1alpha1.APIKeyClass {
	c := keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if isDefault {
		c.Annotations = map[string]string{keywardenv1alpha1.AnnotationDefaultClass: "true"}
	}
	if mutate != nil {
		mutate(&c.Spec)
	}
	return c
}

func TestResolve(t *testing.T) {
	strict := class("strict", false, func(s *keywardenv1alpha1.APIKeyClassSpec) { s.KeyPrefix = "pdm_" })
	def := class("standard", true, nil)
	def2 := class("other", true, nil)
	notDefault := class("plain", false, nil)
	notDefault.Annotations = map[string]string{keywardenv1alpha1.AnnotationDefaultClass: "false"}
	tests := []struct {
		name       string
		className  string
		classes    []keywardenv1alpha1.APIKeyClass
		wantClass  string
		wantReason string
	}{
		{"no classes: built-in", "", nil, "", ""},
		{"named class", "strict", []keywardenv1alpha1.APIKeyClass{strict, def}, "strict", ""},
		{"missing named class", "gone", []keywardenv1alpha1.APIKeyClass{strict}, "", "ClassNotFound"},
		{"the default class", "", []keywardenv1alpha1.APIKeyClass{strict, def}, "standard", ""},
		{"annotation false is not default", "", []keywardenv1alpha1.APIKeyClass{notDefault}, "", ""},
		{"two defaults", "", []keywardenv1alpha1.APIKeyClass{def, strict, def2}, "", "AmbiguousDefaultClass"},
		{"two defaults do not matter with a className", "strict", []keywardenv1alpha1.APIKeyClass{def, strict, def2}, "strict", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, v := Resolve(tt.className, tt.classes)
			if tt.wantReason != "" {
				if v == nil || v.Reason != tt.wantReason {
					t.Fatalf("violation = %v, want %s", v, tt.wantReason)
				}
				return
			}
			if v != nil {
				t.Fatalf("violation %v", v)
			}
			if p.ClassName != tt.wantClass {
				t.Errorf("class = %q, want %q", p.ClassName, tt.wantClass)
			}
		})
	}
	_, v := Resolve("", []keywardenv1alpha1.APIKeyClass{def, def2})
	if want := `APIKeyClasses other, standard are all annotated keywarden.dev/is-default-class=true`; !strings.Contains(v.Message, want) {
		t.Errorf("message %q, want it to name both classes", v.Message)
	}
}

func TestBuiltInAndFromClass(t *testing.T) {
	b := BuiltIn()
	if b.KeyPrefix != "kw_" || b.Roles != nil || b.MaxLifetime != 0 || b.MaxActiveKeysPerOwner != 10 {
		t.Errorf("BuiltIn = %+v", b)
	}
	c := class("c", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.KeyPrefix = "pdm_"
		s.MaxActiveKeysPerOwner = ptr.To[int32](3)
		s.DefaultLifetime = &keywardenv1alpha1.Duration{Duration: time.Hour}
		s.MaxLifetime = &keywardenv1alpha1.Duration{Duration: 2 * time.Hour}
		s.Roles = []keywardenv1alpha1.ClassRole{{Name: "admin"}}
	})
	p := FromClass(&c)
	if p.KeyPrefix != "pdm_" || p.MaxActiveKeysPerOwner != 3 || p.DefaultLifetime != time.Hour || p.MaxLifetime != 2*time.Hour || len(p.Roles) != 1 {
		t.Errorf("FromClass = %+v", p)
	}
	if p := FromClass(&keywardenv1alpha1.APIKeyClass{}); p.KeyPrefix != "kw_" || p.MaxActiveKeysPerOwner != 10 {
		t.Errorf("an empty class does not take the defaults: %+v", p)
	}
}

func TestCheck(t *testing.T) {
	c := class("team", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.Roles = []keywardenv1alpha1.ClassRole{
			{Name: "readonly", Scopes: []keywardenv1alpha1.Scope{"logs:read", "audit:read"}},
			{Name: "admin"},
		}
		s.MaxLifetime = &keywardenv1alpha1.Duration{Duration: 720 * time.Hour}
	})
	p := FromClass(&c)
	rc := class("rotating", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.Rotation = &keywardenv1alpha1.ClassRotation{MaxEvery: &keywardenv1alpha1.Duration{Duration: 24 * time.Hour}, MaxGracePeriod: &keywardenv1alpha1.Duration{Duration: time.Hour}}
	})
	rotating := FromClass(&rc)
	spec := func(role string, scopes ...keywardenv1alpha1.Scope) keywardenv1alpha1.APIKeySpec {
		return keywardenv1alpha1.APIKeySpec{Role: role, Scopes: scopes}
	}
	tests := []struct {
		name    string
		p       Policy
		spec    keywardenv1alpha1.APIKeySpec
		mutate  func(*keywardenv1alpha1.APIKeySpec)
		reason  string
		message string
	}{
		{name: "allowed", p: p, spec: spec("readonly", "logs:read")},
		{name: "allowed without scopes", p: p, spec: spec("readonly")},
		{name: "role not listed", p: p, spec: spec("owner"), reason: "RoleNotAllowed",
			message: `role "owner" is not allowed by APIKeyClass "team"; allowed roles: admin, readonly`},
		{name: "scope not granted to the role", p: p, spec: spec("readonly", "logs:read", "logs:write"), reason: "ScopeNotAllowed",
			message: `scope "logs:write" is not allowed for role "readonly" by APIKeyClass "team"; it allows logs:read, audit:read`},
		{name: "role with no scopes grants none", p: p, spec: spec("admin", "x"), reason: "ScopeNotAllowed"},
		{name: "lifetime at the max", p: p, spec: spec("admin"), mutate: func(s *keywardenv1alpha1.APIKeySpec) {
			s.Lifetime = &keywardenv1alpha1.Duration{Duration: 720 * time.Hour}
		}},
		{name: "lifetime over the max", p: p, spec: spec("admin"), mutate: func(s *keywardenv1alpha1.APIKeySpec) {
			s.Lifetime = &keywardenv1alpha1.Duration{Duration: 721 * time.Hour}
		},
			reason: "LifetimeExceedsMax", message: `lifetime 721h0m0s exceeds the maximum of 720h0m0s set by APIKeyClass "team"`},
		{name: "expiresAt too far from issuance", p: p, spec: spec("admin"), mutate: func(s *keywardenv1alpha1.APIKeySpec) { s.ExpiresAt = &metav1.Time{Time: t0.Add(800 * time.Hour)} },
			reason: "LifetimeExceedsMax"},
		{name: "no expiry under a max: the max applies instead", p: p, spec: spec("admin")},
		{name: "rotation less often than the class requires", p: rotating, spec: spec("admin"), mutate: func(s *keywardenv1alpha1.APIKeySpec) {
			s.Rotation = &keywardenv1alpha1.Rotation{Every: &keywardenv1alpha1.Duration{Duration: 25 * time.Hour}}
		}, reason: "RotationRequired", message: `rotation every 25h0m0s is less often than the 24h0m0s required by APIKeyClass "rotating"`},
		{name: "no schedule where the class requires one: the class's applies", p: rotating, spec: spec("admin")},
		{name: "a grace period over the class's maximum", p: rotating, spec: spec("admin"), mutate: func(s *keywardenv1alpha1.APIKeySpec) {
			s.Rotation = &keywardenv1alpha1.Rotation{GracePeriod: &keywardenv1alpha1.Duration{Duration: 2 * time.Hour}}
		}, reason: "GracePeriodExceedsMax", message: `grace period 2h0m0s exceeds the maximum of 1h0m0s set by APIKeyClass "rotating"`},
		{name: "rotation more often than the built-in minimum", p: BuiltIn(), spec: spec("admin"), mutate: func(s *keywardenv1alpha1.APIKeySpec) {
			s.Rotation = &keywardenv1alpha1.Rotation{Every: &keywardenv1alpha1.Duration{Duration: time.Minute}}
		}, reason: "RotationTooFrequent", message: `rotation every 1m0s is more often than the 1h0m0s allowed by the built-in policy (rotation.minEvery)`},
		{name: "rotation at the built-in minimum", p: BuiltIn(), spec: spec("admin"), mutate: func(s *keywardenv1alpha1.APIKeySpec) {
			s.Rotation = &keywardenv1alpha1.Rotation{Every: &keywardenv1alpha1.Duration{Duration: time.Hour}}
		}},
		{name: "built-in allows anything", p: BuiltIn(), spec: spec("whatever", "any:scope"), mutate: func(s *keywardenv1alpha1.APIKeySpec) {
			s.Lifetime = &keywardenv1alpha1.Duration{Duration: 1e6 * time.Hour}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			if tt.mutate != nil {
				tt.mutate(&s)
			}
			v := tt.p.Check(&s, t0)
			switch {
			case tt.reason == "" && v != nil:
				t.Fatalf("violation %v", v)
			case tt.reason != "" && (v == nil || v.Reason != tt.reason):
				t.Fatalf("violation = %v, want %s", v, tt.reason)
			case tt.message != "" && v.Message != tt.message:
				t.Errorf("message %q, want %q", v.Message, tt.message)
			}
		})
	}
}

func TestExpiresAtAndScopes(t *testing.T) {
	withDefault := Policy{DefaultLifetime: time.Hour, MaxLifetime: 2 * time.Hour}
	onlyMax := Policy{MaxLifetime: 2 * time.Hour}
	if got := withDefault.ExpiresAt(&keywardenv1alpha1.APIKeySpec{}, t0); got == nil || !got.Time.Equal(t0.Add(time.Hour)) {
		t.Errorf("default lifetime: %v", got)
	}
	if got := onlyMax.ExpiresAt(&keywardenv1alpha1.APIKeySpec{}, t0); got == nil || !got.Time.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("max as the lifetime: %v", got)
	}
	if got := withDefault.ExpiresAt(&keywardenv1alpha1.APIKeySpec{Lifetime: &keywardenv1alpha1.Duration{Duration: time.Minute}}, t0); got != nil {
		t.Errorf("a spec with a lifetime gets a recorded expiry: %v", got)
	}
	if got := BuiltIn().ExpiresAt(&keywardenv1alpha1.APIKeySpec{}, t0); got != nil {
		t.Errorf("built-in expiry: %v", got)
	}

	p := Policy{Roles: map[string][]keywardenv1alpha1.Scope{"ro": {"a", "b"}}}
	if got := p.EffectiveScopes(&keywardenv1alpha1.APIKeySpec{Role: "ro"}); len(got) != 2 {
		t.Errorf("a key without scopes gets its role's: %v", got)
	}
	if got := p.EffectiveScopes(&keywardenv1alpha1.APIKeySpec{Role: "ro", Scopes: []keywardenv1alpha1.Scope{"a"}}); len(got) != 1 || got[0] != "a" {
		t.Errorf("a key's own scopes: %v", got)
	}
	if got := BuiltIn().EffectiveScopes(&keywardenv1alpha1.APIKeySpec{Role: "ro"}); got != nil {
		t.Errorf("built-in scopes: %v", got)
	}
}

func TestAdmit(t *testing.T) {
	h := func(uid string, sec int, issued, gone bool) Holder {
		return Holder{UID: types.UID(uid), Created: t0.Add(time.Duration(sec) * time.Second), Issued: issued, Gone: gone}
	}
	tests := []struct {
		name      string
		self      Holder
		others    []Holder
		limit     int
		wantOK    bool
		wantAhead int
	}{
		{"first key", h("a", 0, false, false), nil, 1, true, 0},
		{"at the limit", h("c", 5, false, false), []Holder{h("a", 0, true, false), h("b", 1, true, false)}, 2, false, 2},
		{"gone keys free their place", h("c", 5, false, false), []Holder{h("a", 0, true, true), h("b", 1, true, false)}, 2, true, 1},
		{"older waiting keys queue first", h("c", 5, false, false), []Holder{h("a", 0, true, false), h("b", 1, false, false)}, 2, false, 2},
		{"newer waiting keys queue after", h("b", 1, false, false), []Holder{h("a", 0, true, false), h("c", 5, false, false)}, 2, true, 1},
		{"issued keys keep their place even when newer", h("a", 0, false, false), []Holder{h("z", 9, true, false)}, 1, false, 1},
		{"same second: the UID decides", h("b", 3, false, false), []Holder{h("a", 3, false, false)}, 1, false, 1},
		{"same second, other order", h("a", 3, false, false), []Holder{h("b", 3, false, false)}, 1, true, 0},
		{"itself is not counted", h("a", 0, true, false), []Holder{h("a", 0, true, false)}, 1, true, 0},
	}
	for _, tt := range tests {
		ok, ahead := Admit(tt.self, tt.others, tt.limit)
		if ok != tt.wantOK || ahead != tt.wantAhead {
			t.Errorf("%s: Admit = %v, %d; want %v, %d", tt.name, ok, ahead, tt.wantOK, tt.wantAhead)
		}
	}
}

func TestCheckNamespace(t *testing.T) {
	withSelector := func(sel *metav1.LabelSelector) *keywardenv1alpha1.APIKeyClass {
		return &keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "payments"}, Spec: keywardenv1alpha1.APIKeyClassSpec{NamespaceSelector: sel}}
	}
	team := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}
	notSandbox := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "sandbox", Operator: metav1.LabelSelectorOpDoesNotExist}}}
	invalid := &metav1.LabelSelector{MatchLabels: map[string]string{"not a key!": "x"}}
	tests := []struct {
		name    string
		policy  Policy
		labels  map[string]string
		want    string // the violation's reason, empty for none
		message string
	}{
		{"built-in: every namespace", BuiltIn(), nil, "", ""},
		{"a class without a selector: every namespace", FromClass(withSelector(nil)), nil, "", ""},
		{"an empty selector: every namespace", FromClass(withSelector(&metav1.LabelSelector{})), nil, "", ""},
		{"labelled", FromClass(withSelector(team)), map[string]string{"team": "payments", "x": "y"}, "", ""},
		{"labelled otherwise", FromClass(withSelector(team)), map[string]string{"team": "shop"}, keywardenv1alpha1.ReasonNamespaceNotAllowed, `APIKeyClass "payments" admits the keys of namespaces labelled team=payments; namespace "ns" is not`},
		{"unlabelled", FromClass(withSelector(team)), nil, keywardenv1alpha1.ReasonNamespaceNotAllowed, "namespace \"ns\" is not"},
		{"an expression: not a sandbox", FromClass(withSelector(notSandbox)), map[string]string{"team": "shop"}, "", ""},
		{"an expression: a sandbox", FromClass(withSelector(notSandbox)), map[string]string{"sandbox": ""}, keywardenv1alpha1.ReasonNamespaceNotAllowed, "labelled !sandbox"},
		{"an invalid selector admits nothing", FromClass(withSelector(invalid)), map[string]string{"not a key!": "x"}, keywardenv1alpha1.ReasonInvalidNamespaceSelector, "invalid spec.namespaceSelector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.policy.CheckNamespace("ns", tt.labels)
			switch {
			case tt.want == "" && v != nil:
				t.Fatalf("refused: %v", v)
			case tt.want != "" && (v == nil || v.Reason != tt.want || !strings.Contains(v.Message, tt.message)):
				t.Fatalf("got %+v, want %s saying %q", v, tt.want, tt.message)
			}
			if got := tt.policy.ChecksNamespace(); got != (tt.policy.Namespaces != nil) {
				t.Errorf("ChecksNamespace = %v", got)
			}
		})
	}
	if p := NamespaceSelectorProblem(withSelector(invalid)); !strings.Contains(p, "invalid") {
		t.Errorf("the problem of an invalid selector: %q", p)
	}
	if p := NamespaceSelectorProblem(withSelector(team)); p != "" {
		t.Errorf("the problem of a valid selector: %q", p)
	}
}

func TestRotationScheduleAndGrace(t *testing.T) {
	d := func(x time.Duration) *keywardenv1alpha1.Duration { return &keywardenv1alpha1.Duration{Duration: x} }
	c := class("c", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.Rotation = &keywardenv1alpha1.ClassRotation{Every: d(10 * time.Hour), MaxEvery: d(20 * time.Hour), GracePeriod: d(time.Hour), MaxGracePeriod: d(2 * time.Hour)}
	})
	bounded := FromClass(&c)
	fast := class("fast", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.Rotation = &keywardenv1alpha1.ClassRotation{MinEvery: d(5 * time.Minute)}
	})
	quick := class("quick", false, func(s *keywardenv1alpha1.APIKeyClassSpec) {
		s.Rotation = &keywardenv1alpha1.ClassRotation{Every: d(10 * time.Minute)}
	})
	tests := []struct {
		name         string
		p            Policy
		r            *keywardenv1alpha1.Rotation
		every, grace time.Duration
	}{
		{"built-in, nothing set: no schedule, a day's grace", BuiltIn(), nil, 0, keywardenv1alpha1.DefaultGracePeriod},
		{"built-in, the key's own", BuiltIn(), &keywardenv1alpha1.Rotation{Every: d(5 * time.Hour), GracePeriod: d(0)}, 5 * time.Hour, 0},
		{"the class's defaults", bounded, &keywardenv1alpha1.Rotation{Request: "x"}, 10 * time.Hour, time.Hour},
		{"the key's own within the bounds", bounded, &keywardenv1alpha1.Rotation{Every: d(15 * time.Hour), GracePeriod: d(90 * time.Minute)}, 15 * time.Hour, 90 * time.Minute},
		{"built-in: held to the minimum of an hour", BuiltIn(), &keywardenv1alpha1.Rotation{Every: d(time.Minute)}, time.Hour, keywardenv1alpha1.DefaultGracePeriod},
		{"a class's own minimum", FromClass(&fast), &keywardenv1alpha1.Rotation{Every: d(time.Minute)}, 5 * time.Minute, keywardenv1alpha1.DefaultGracePeriod},
		{"a class's schedule under the default minimum lowers it to itself", FromClass(&quick), &keywardenv1alpha1.Rotation{Every: d(time.Minute)}, 10 * time.Minute, keywardenv1alpha1.DefaultGracePeriod},
		{"recorded rules keep their minimum", Recorded("gone", fast.Spec.Rotation), &keywardenv1alpha1.Rotation{Every: d(time.Minute)}, 5 * time.Minute, keywardenv1alpha1.DefaultGracePeriod},
		{"held to the class's maximums", bounded, &keywardenv1alpha1.Rotation{Every: d(30 * time.Hour), GracePeriod: d(3 * time.Hour)}, 20 * time.Hour, 2 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.RotationSchedule(tt.r); got != tt.every {
				t.Errorf("RotationSchedule = %v, want %v", got, tt.every)
			}
			if got := tt.p.RotationGrace(tt.r); got != tt.grace {
				t.Errorf("RotationGrace = %v, want %v", got, tt.grace)
			}
		})
	}
}

func TestLimitAndClassOf(t *testing.T) {
	ns := Policy{ClassName: "acct", MaxActiveKeysPerOwner: 3}
	across := ns
	across.LimitAcrossNamespaces = true
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{ns, "owner o already holds 3 active keys (limit 3) in namespace team; revoke or delete one of them first"},
		{across, `owner o already holds 3 active keys of APIKeyClass "acct" (limit 3, counted in every namespace); revoke or delete one of them first`},
	} {
		if v := tc.p.Limit("o", "team", 3); v.Reason != keywardenv1alpha1.ReasonActiveKeyLimit || v.Message != tc.want {
			t.Errorf("Limit = %+v, want %q", v, tc.want)
		}
	}
	if !FromClass(&keywardenv1alpha1.APIKeyClass{Spec: keywardenv1alpha1.APIKeyClassSpec{OwnerLimitScope: keywardenv1alpha1.OwnerLimitCluster}}).LimitAcrossNamespaces ||
		FromClass(&keywardenv1alpha1.APIKeyClass{Spec: keywardenv1alpha1.APIKeyClassSpec{OwnerLimitScope: keywardenv1alpha1.OwnerLimitNamespace}}).LimitAcrossNamespaces ||
		FromClass(&keywardenv1alpha1.APIKeyClass{}).LimitAcrossNamespaces {
		t.Error("only ownerLimitScope: Cluster counts across namespaces")
	}
	key := func(status, spec string) *keywardenv1alpha1.APIKey {
		return &keywardenv1alpha1.APIKey{Spec: keywardenv1alpha1.APIKeySpec{ClassName: spec}, Status: keywardenv1alpha1.APIKeyStatus{ClassName: status}}
	}
	for _, tc := range []struct {
		k    *keywardenv1alpha1.APIKey
		want string
	}{
		{key("issued-under", "asked-for"), "issued-under"}, // the class it was issued under, whatever its spec says now
		{key("", "asked-for"), "asked-for"},
		{key("", ""), "the-default"},
	} {
		if got := ClassOf(tc.k, "the-default"); got != tc.want {
			t.Errorf("ClassOf(%+v) = %q, want %q", tc.k, got, tc.want)
		}
	}
}

func TestClassNotFoundSaysWhatWasMeant(t *testing.T) {
	open := func(name string) keywardenv1alpha1.APIKeyClass {
		return keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	selecting := func(name string) keywardenv1alpha1.APIKeyClass {
		c := open(name)
		c.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}
		return c
	}
	many := []keywardenv1alpha1.APIKeyClass{}
	for _, n := range []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b1", "b2"} {
		many = append(many, open(n))
	}
	for _, tc := range []struct {
		name, className string
		classes         []keywardenv1alpha1.APIKeyClass
		want            string
	}{
		{"a slip of one letter", "analytcs", []keywardenv1alpha1.APIKeyClass{open("web"), open("analytics")},
			`APIKeyClass "analytcs" does not exist (did you mean "analytics"? classes: analytics, web); the key is issued once it does`},
		{"nothing near", "payments", []keywardenv1alpha1.APIKeyClass{open("web"), open("analytics")},
			`APIKeyClass "payments" does not exist (classes: analytics, web); the key is issued once it does`},
		{"no class", "web", nil,
			`APIKeyClass "web" does not exist (no class is open to every namespace: ask an admin which class to use, or leave className out for the default); the key is issued once it does`},
		{"many classes: ten named", "zz", many,
			`APIKeyClass "zz" does not exist (classes: a1, a2, a3, a4, a5, a6, a7, a8, a9, b1, …); the key is issued once it does`},
		// Attack: whoever reads the key learns no class that selects
		// namespaces, not even by a suggestion.
		{"a class of other teams' namespaces", "paymnts", []keywardenv1alpha1.APIKeyClass{selecting("payments"), open("web")},
			`APIKeyClass "paymnts" does not exist (classes: web); the key is issued once it does`},
	} {
		_, v := Resolve(tc.className, tc.classes)
		if v == nil || v.Reason != keywardenv1alpha1.ReasonClassNotFound || v.Message != tc.want {
			t.Errorf("%s: %+v\nwant %s", tc.name, v, tc.want)
		}
	}
}

func TestExpiryInPast(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	past := metav1.NewTime(at.Add(-time.Second))
	now := metav1.NewTime(at)
	later := metav1.NewTime(at.Add(time.Second))
	for _, tc := range []struct {
		name string
		exp  *metav1.Time
		want string
	}{
		{"no expiry", nil, ""},
		{"a second later", &later, ""},
		{"now", &now, "spec.expiresAt 2026-12-07T12:00:00Z is in the past: set a later expiresAt, or a lifetime (such as 30d) instead"},
		{"a second ago", &past, "spec.expiresAt 2026-12-07T11:59:59Z is in the past: set a later expiresAt, or a lifetime (such as 30d) instead"},
	} {
		v := ExpiryInPast(tc.exp, at)
		got := ""
		if v != nil {
			got = v.Message
			if v.Reason != keywardenv1alpha1.ReasonExpiryInPast {
				t.Errorf("%s: reason %s", tc.name, v.Reason)
			}
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		// Check refuses it first, whatever the class.
		if v := BuiltIn().Check(&keywardenv1alpha1.APIKeySpec{Role: "x", ExpiresAt: tc.exp}, at); (v != nil) != (tc.want != "") {
			t.Errorf("%s: Check says %v", tc.name, v)
		}
	}
}
