package keyview

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

var update = flag.Bool("update", false, "write the golden files")

func init() { time.Local = time.UTC }

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }

func cond(t string, s metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: reason + " message"}
}

const day = 24 * time.Hour

// key is an issued, tracked key created age ago.
func key(name string, age time.Duration, mutate ...func(*keywardenv1alpha1.APIKey)) keywardenv1alpha1.APIKey {
	k := keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a", CreationTimestamp: *at(-age)},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "Key " + name, Owner: "alice", Role: "readonly", TrackLastUsed: true},
		Status: keywardenv1alpha1.APIKeyStatus{
			Phase: keywardenv1alpha1.PhaseActive, KeyPrefix: "kw_" + name[:1] + "Xy9", Owner: "alice", Role: "readonly",
			IssuedAt: at(-age + time.Second), ExpiresAt: at(-age + 30*day),
			Conditions: []metav1.Condition{cond(keywardenv1alpha1.ConditionReady, metav1.ConditionTrue, keywardenv1alpha1.ReasonKeyIssued)},
		},
	}
	for _, m := range mutate {
		m(&k)
	}
	return k
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30d": 30 * day, "2w": 14 * day, "1d12h": 36 * time.Hour, "720h": 720 * time.Hour, "90m": 90 * time.Minute, "0d1s": time.Second,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// For an APIKey's field: as a Go duration, which every release reads.
	for in, want := range map[string]string{"30d": "720h0m0s", "2w": "336h0m0s", "720h": "720h0m0s", "1d12h": "36h0m0s", "90m": "1h30m0s"} {
		if got, err := Lifetime(in); err != nil || got.String() != want {
			t.Errorf("Lifetime(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	// Longer than the API server takes as a Go duration: said here, not
	// refused there.
	for _, in := range []string{"41667d", "99999d", "9999w", "1000000h", "1d999999h"} {
		if _, err := Lifetime(in); err == nil || !strings.Contains(err.Error(), "is longer than a key takes: at most 41666d (999999h)") {
			t.Errorf("Lifetime(%q): %v, want the bound named", in, err)
		}
	}
	if got, err := Lifetime("41666d"); err != nil || got.String() != "999984h0m0s" {
		t.Errorf("Lifetime(41666d) = %v, %v", got, err)
	}
	for _, in := range []string{"", "0d", "0s", "d", "-1d", "1.5d", "30", "30days", "1d-2h", "99999999d", "1dd"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestParsePhase(t *testing.T) {
	if p, err := ParsePhase("active"); err != nil || p != keywardenv1alpha1.PhaseActive {
		t.Errorf("ParsePhase(active) = %q, %v", p, err)
	}
	if _, err := ParsePhase("Stalled"); err == nil || !strings.Contains(err.Error(), "Pending, Active, Refused, Expired, Revoked") {
		t.Errorf("ParsePhase(Stalled): %v, want the phases named", err)
	}
}

func TestColumns(t *testing.T) {
	tests := []struct {
		name                      string
		key                       keywardenv1alpha1.APIKey
		status, expires, lastUsed string
	}{
		{"active, never used", key("a", day), "Active", "2026-12-31 12:00 UTC", "Never"},
		{"used", key("a", day, func(k *keywardenv1alpha1.APIKey) { k.Status.LastUsedAt = at(-time.Hour) }), "Active", "2026-12-31 12:00 UTC", "2026-12-02 11:00:00 UTC"},
		{"untracked", key("a", day, func(k *keywardenv1alpha1.APIKey) { k.Spec.TrackLastUsed = false }), "Active", "2026-12-31 12:00 UTC", "untracked"},
		{"never expires", key("a", day, func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = nil }), "Active", "never", "Never"},
		{"pending, no status", key("a", 0, func(k *keywardenv1alpha1.APIKey) { k.Status = keywardenv1alpha1.APIKeyStatus{} }), "Pending", "-", "Never"},
		{"pending with a lifetime", key("a", 0, func(k *keywardenv1alpha1.APIKey) {
			k.Status = keywardenv1alpha1.APIKeyStatus{}
			k.Spec.Lifetime = &keywardenv1alpha1.Duration{Duration: 30 * day}
		}), "Pending", "30d after issuance", "Never"},
		{"pending with a date", key("a", 0, func(k *keywardenv1alpha1.APIKey) {
			k.Status = keywardenv1alpha1.APIKeyStatus{}
			k.Spec.ExpiresAt = at(2 * day)
		}), "Pending", "2026-12-04 12:00 UTC", "Never"},
		{"refused", key("a", 0, func(k *keywardenv1alpha1.APIKey) {
			k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseRefused, Conditions: []metav1.Condition{
				cond(keywardenv1alpha1.ConditionReconciling, metav1.ConditionTrue, keywardenv1alpha1.ReasonActiveKeyLimit)}}
		}), "Refused (ActiveKeyLimit)", "-", "Never"},
		{"stalled before issuance", key("a", 0, func(k *keywardenv1alpha1.APIKey) {
			k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhasePending, Conditions: []metav1.Condition{
				cond(keywardenv1alpha1.ConditionStalled, metav1.ConditionTrue, keywardenv1alpha1.ReasonRoleNotAllowed)}}
		}), "Pending (Stalled: RoleNotAllowed)", "-", "Never"},
		{"expired is not shown stalled", key("a", 40*day, func(k *keywardenv1alpha1.APIKey) {
			k.Status.Phase = keywardenv1alpha1.PhaseExpired
			k.Status.Conditions = []metav1.Condition{cond(keywardenv1alpha1.ConditionStalled, metav1.ConditionTrue, keywardenv1alpha1.ReasonExpired)}
		}), "Expired", "2026-11-22 12:00 UTC", "Never"},
		{"expiring soon", key("a", 28*day, func(k *keywardenv1alpha1.APIKey) {
			k.Status.Conditions = append(k.Status.Conditions, cond(keywardenv1alpha1.ConditionExpiringSoon, metav1.ConditionTrue, keywardenv1alpha1.ReasonExpiringSoon))
		}), "Active (expiring soon)", "2026-12-04 12:00 UTC", "Never"},
	}
	for _, tt := range tests {
		k := tt.key
		if got := Status(&k); got != tt.status {
			t.Errorf("%s: status %q, want %q", tt.name, got, tt.status)
		}
		if got := Expires(&k); got != tt.expires {
			t.Errorf("%s: expires %q, want %q", tt.name, got, tt.expires)
		}
		if got := LastUsed(&k); got != tt.lastUsed {
			t.Errorf("%s: last used %q, want %q", tt.name, got, tt.lastUsed)
		}
	}
}

func TestExpiredAndRevoked(t *testing.T) {
	for _, tc := range []struct {
		name             string
		key              keywardenv1alpha1.APIKey
		expired, revoked bool
	}{
		{"active", key("a", day), false, false},
		{"never expires", key("a", day, func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = nil }), false, false},
		{"expiry passed, not yet marked", key("a", 40*day, func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = at(-time.Second) }), true, false},
		{"expiry now", key("a", 40*day, func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = at(0) }), true, false},
		{"marked expired", key("a", 40*day, func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseExpired }), true, false},
		{"revoked by its spec, not yet marked", key("a", day, func(k *keywardenv1alpha1.APIKey) { k.Spec.Revoked = true }), false, true},
		{"reported", key("a", day, func(k *keywardenv1alpha1.APIKey) {
			k.Status.Revocation = &keywardenv1alpha1.Revocation{Reason: "KeyReported", At: *at(0)}
		}), false, true},
		{"marked revoked", key("a", day, func(k *keywardenv1alpha1.APIKey) { k.Status.Phase = keywardenv1alpha1.PhaseRevoked }), false, true},
		{"revoked after its expiry", key("a", 40*day, func(k *keywardenv1alpha1.APIKey) {
			k.Status.Phase, k.Spec.Revoked = keywardenv1alpha1.PhaseRevoked, true
			k.Status.ExpiresAt = at(-day)
		}), true, true},
	} {
		if got := HasExpired(&tc.key, now); got != tc.expired {
			t.Errorf("%s: HasExpired = %v, want %v", tc.name, got, tc.expired)
		}
		if got := Revoked(&tc.key); got != tc.revoked {
			t.Errorf("%s: Revoked = %v, want %v", tc.name, got, tc.revoked)
		}
	}
}

func TestFilter(t *testing.T) {
	active := key("active", day)
	used := key("used", 40*day, func(k *keywardenv1alpha1.APIKey) {
		k.Status.LastUsedAt = at(-31 * day)
		k.Status.ExpiresAt = at(3 * day)
		k.Spec.Description = "The WordPress purge plugin"
	})
	old := key("old", 40*day, func(k *keywardenv1alpha1.APIKey) { k.Status.ExpiresAt = at(100 * day) })
	untracked := key("untracked", 40*day, func(k *keywardenv1alpha1.APIKey) { k.Spec.TrackLastUsed, k.Status.ExpiresAt = false, at(100*day) })
	reassigned := key("reassigned", day, func(k *keywardenv1alpha1.APIKey) { k.Spec.Owner = "bob" })
	revoked := key("revoked", 40*day, func(k *keywardenv1alpha1.APIKey) {
		k.Status.Phase = keywardenv1alpha1.PhaseRevoked
		k.Status.ExpiresAt = at(day)
	})
	all := []keywardenv1alpha1.APIKey{active, used, old, untracked, reassigned, revoked}
	tests := []struct {
		name   string
		filter Filter
		want   string
	}{
		{"none", Filter{}, "active used old untracked reassigned revoked"},
		{"owner as granted, as the column shows it", Filter{Owner: "alice"}, "active used old untracked reassigned revoked"},
		{"an owner asked for but not granted", Filter{Owner: "bob"}, ""},
		{"phase", Filter{Phase: keywardenv1alpha1.PhaseRevoked}, "revoked"},
		{"search description, any case", Filter{Search: "wordpress"}, "used"},
		{"search prefix", Filter{Search: "kw_oXy"}, "old"},
		{"search display name", Filter{Search: "KEY UNTR"}, "untracked"},
		{"expiring within 7d: active only", Filter{ExpiringWithin: 7 * day}, "used"},
		{"unused for 30d: tracked, active, issued or used before", Filter{UnusedFor: 30 * day}, "used old"},
		{"role", Filter{Role: "admin"}, ""},
	}
	for _, tt := range tests {
		var got []string
		for i := range all {
			if tt.filter.Match(&all[i], now) {
				got = append(got, all[i].Name)
			}
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, got, tt.want)
		}
	}
}

func TestNewest(t *testing.T) {
	keys := []keywardenv1alpha1.APIKey{key("b", day), key("c", time.Hour), key("a", day), key("d", 2*day)}
	Newest(keys)
	var got []string
	for _, k := range keys {
		got = append(got, k.Name)
	}
	if strings.Join(got, " ") != "c a b d" {
		t.Errorf("order %v, want c a b d (newest first, then by name)", got)
	}
}

// A namespace member writes an APIKey whose text would drive an admin's
// terminal: escape sequences and line breaks reach it escaped.
func TestCleanAttack(t *testing.T) {
	for in, want := range map[string]string{
		"plain name":                "plain name",
		"\x1b]0;pwned\x07title":     `\x1b]0;pwned\atitle`,
		"row\nNAME forged   Active": `row\nNAME forged   Active`,
		"clear\x1b[2J\x1b[H":        `clear\x1b[2J\x1b[H`,
		"bidi\u202eevil":            `bidi\u202eevil`,
		"ünïcode ok":                "ünïcode ok",
		`looks\x1b escaped`:         `looks\\x1b escaped`,
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	k := key("evil", day, func(k *keywardenv1alpha1.APIKey) {
		k.Spec.DisplayName = "x\x1b[2Jy"
		k.Status.Owner = "mallory\nforged-row"
		k.Spec.Description = "\x1b]8;;http://evil\x07link"
		k.Status.Conditions[0].Message = "msg\x1b[1A"
	})
	// A class's name for a role is text too.
	class := keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: keywardenv1alpha1.APIKeyClassSpec{
		Roles: []keywardenv1alpha1.ClassRole{{Name: k.Spec.Role, DisplayName: "ADMIN\x1b[2K\nforged-row"}}}}
	k.Status.ClassName = "c"
	var b bytes.Buffer
	if err := Table(&b, []keywardenv1alpha1.APIKey{k}, TableOptions{Wide: true, Roles: RoleNamesOf([]keywardenv1alpha1.APIKeyClass{class})}); err != nil {
		t.Fatal(err)
	}
	if err := Show(&b, Details{Key: &k, Class: &class}, now); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), `ADMIN\x1b[2K\nforged-row`) != 2 {
		t.Errorf("the class's name for the role is not shown, escaped, in the list and in show:\n%s", b.String())
	}
	if strings.ContainsAny(b.String(), "\x1b\x07") || strings.Contains(b.String(), "\nforged-row") {
		t.Errorf("control characters reached the output:\n%q", b.String())
	}

	// A long text is cut in the list, so that it wraps no row.
	long := key("long", day, func(k *keywardenv1alpha1.APIKey) {
		k.Spec.DisplayName = strings.Repeat("x", 50) + strings.Repeat("y", 200)
	})
	b.Reset()
	if err := Table(&b, []keywardenv1alpha1.APIKey{long}, TableOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), strings.Repeat("y", 11)) || !strings.Contains(b.String(), strings.Repeat("y", 9)+"…") {
		t.Errorf("a long display name is not cut at 60 characters:\n%s", b.String())
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./internal/keyview -update to accept):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func fleet() []keywardenv1alpha1.APIKey {
	keys := []keywardenv1alpha1.APIKey{
		key("wordpress-purge", 3*day, func(k *keywardenv1alpha1.APIKey) {
			k.Spec.DisplayName, k.Spec.Description = "WordPress purge plugin", "Purges the CDN from WordPress"
			k.Status.Scopes = []keywardenv1alpha1.Scope{"cache:purge"}
			k.Status.LastUsedAt = at(-2 * time.Hour)
			k.Status.ClassName = "standard"
		}),
		key("billing-export", 10*day, func(k *keywardenv1alpha1.APIKey) {
			k.Namespace, k.Spec.TrackLastUsed = "team-b", false
			k.Status.ExpiresAt = nil
		}),
		key("ci-deploy", time.Hour, func(k *keywardenv1alpha1.APIKey) {
			k.Spec.Owner, k.Spec.Role = "bob", "admin"
			k.Status = keywardenv1alpha1.APIKeyStatus{Phase: keywardenv1alpha1.PhaseRefused, Conditions: []metav1.Condition{
				cond(keywardenv1alpha1.ConditionReconciling, metav1.ConditionTrue, keywardenv1alpha1.ReasonActiveKeyLimit)}}
		}),
		key("past-expiry", 40*day, func(k *keywardenv1alpha1.APIKey) {
			// Its expiry passed a moment ago; the controller has not
			// marked it yet.
			k.Status.ExpiresAt = at(-time.Minute)
		}),
		key("old-report", 50*day, func(k *keywardenv1alpha1.APIKey) {
			k.Status.Phase = keywardenv1alpha1.PhaseRevoked
			k.Status.RevokedAt = at(-5 * day)
			k.Status.Conditions = nil
		}),
	}
	Newest(keys)
	return keys
}

func TestTableGolden(t *testing.T) {
	roles := RoleNamesOf([]keywardenv1alpha1.APIKeyClass{{
		ObjectMeta: metav1.ObjectMeta{Name: "standard"},
		Spec:       keywardenv1alpha1.APIKeyClassSpec{Roles: []keywardenv1alpha1.ClassRole{{Name: "readonly", DisplayName: "READONLY"}, {Name: "admin"}}},
	}})
	for name, o := range map[string]TableOptions{"list.golden": {Now: now}, "list-all-wide.golden": {AllNamespaces: true, Wide: true, Now: now, Roles: roles}} {
		var b bytes.Buffer
		if err := Table(&b, fleet(), o); err != nil {
			t.Fatal(err)
		}
		golden(t, name, b.String())
	}
}

func TestShowGolden(t *testing.T) {
	k := fleet()[1] // wordpress-purge
	k.Spec.Rotation = &keywardenv1alpha1.Rotation{Every: &keywardenv1alpha1.Duration{Duration: 30 * day}}
	k.Status.Rotation = &keywardenv1alpha1.RotationStatus{LastRotatedAt: at(-day), Previous: []keywardenv1alpha1.PreviousKey{
		{RecordedKey: keywardenv1alpha1.RecordedKey{KeyPrefix: "kw_wOld1"}, RotatedAt: *at(-day), ValidUntil: *at(0)},
	}}
	k.Status.SecretRef = &keywardenv1alpha1.SecretReference{Name: "wordpress-purge"}
	class := &keywardenv1alpha1.APIKeyClass{ObjectMeta: metav1.ObjectMeta{Name: "standard"}, Spec: keywardenv1alpha1.APIKeyClassSpec{Roles: []keywardenv1alpha1.ClassRole{
		{Name: "readonly", DisplayName: "READONLY", Scopes: []keywardenv1alpha1.Scope{"cache:purge"}, ScopeDescriptions: []keywardenv1alpha1.ScopeDescription{{Scope: "cache:purge", Description: "Purge cached pages"}}},
	}}}
	k.Status.History = []keywardenv1alpha1.HistoryEntry{
		{At: *at(-3 * day), Event: "KeyIssued", Message: "Key kw_wOld1... was issued into Secret wordpress-purge"},
		{At: *at(-day), Event: "KeyRotated", Message: "The key rotated: kw_wNew2... is in Secret wordpress-purge"},
	}
	// An Event anyone who may create Events in the namespace could write:
	// shown among the events, as unverified, never in the history.
	events := []corev1.Event{
		{Type: "Normal", Reason: "KeyIssued", Message: "Issued a key into Secret wordpress-purge", LastTimestamp: *at(-3 * day)},
		{Type: "Normal", Reason: "KeyRevoked", Message: "Forged: the key was revoked", LastTimestamp: *at(-2 * day), ReportingController: "keywarden"},
	}
	var b bytes.Buffer
	if err := Show(&b, Details{Key: &k, Class: class, Events: events}, now); err != nil {
		t.Fatal(err)
	}
	golden(t, "show.golden", b.String())
	history, events2, _ := strings.Cut(b.String(), "Events (unverified")
	if !strings.Contains(history, "History (recorded by the controller") || strings.Contains(history, "Forged") || !strings.Contains(events2, "Forged") {
		t.Errorf("a forged event is shown as history, or not as unverified:\n%s", b.String())
	}

	pending := key("new", 0, func(k *keywardenv1alpha1.APIKey) { k.Status = keywardenv1alpha1.APIKeyStatus{} })
	b.Reset()
	if err := Show(&b, Details{Key: &pending, EventsNote: "you may not list events in team-a"}, now); err != nil {
		t.Fatal(err)
	}
	golden(t, "show-pending.golden", b.String())
}

// An Event someone wrote about a key with a time in the future does not
// push the key's own events out: the order is the API server's.
func TestRecentEventsAttack(t *testing.T) {
	ev := func(reason string, created, claimed time.Duration) corev1.Event {
		return corev1.Event{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: *at(created)}, Reason: reason, LastTimestamp: *at(claimed)}
	}
	events := []corev1.Event{ev("KeyIssued", -3*time.Hour, -3*time.Hour), ev("Forged", -time.Hour, 100*day), ev("KeyRotated", -time.Minute, -time.Minute)}
	var got []string
	for _, e := range RecentEvents(events, 2) {
		got = append(got, e.Reason)
	}
	if strings.Join(got, " ") != "Forged KeyRotated" {
		t.Errorf("recent events %v, want the last two the API server received, Forged KeyRotated", got)
	}
}

// A key granted no role says so where its role is shown, and names the
// role its spec asks for as not admitted; the table shows no role.
func TestShowAKeyGrantedNoRole(t *testing.T) {
	k := fleet()[1]
	k.Spec.Role, k.Status.Owner, k.Status.Role, k.Status.Scopes = "admin", k.Spec.Owner, "", nil
	var b bytes.Buffer
	if err := Show(&b, Details{Key: &k}, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "none, so the key verifies no request (the spec asks for admin, not admitted)") {
		t.Errorf("show does not say the key is granted no role:\n%s", b.String())
	}
	b.Reset()
	if err := Table(&b, []keywardenv1alpha1.APIKey{k}, TableOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "admin") {
		t.Errorf("the table shows the role the spec asks for:\n%s", b.String())
	}
}

func TestRelativeTimes(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{14*24*time.Hour - time.Second, "in 14 days"}, // created with 14d a second ago
		{14*24*time.Hour - 13*time.Hour, "in 13 days"},
		{36 * time.Hour, "in 36 hours"},
		{47*time.Hour + 31*time.Minute, "in 2 days"},
		{90 * time.Minute, "in 90 minutes"},
		{119 * time.Second, "in 2 minutes"},
		{30 * time.Second, "in 30 seconds"},
		{-time.Second, "1 second ago"},
		{-3 * time.Minute, "3 minutes ago"},
		{-25 * time.Hour, "25 hours ago"},
		{-3 * 24 * time.Hour, "3 days ago"},
	} {
		if got := Relative(now.Add(tc.d), now); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.d, got, tc.want)
		}
	}
	// A time near year 1, as anyone may write in spec.expiresAt: the most
	// a Duration holds, not a negative count.
	if got := Relative(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), now); got != "106751 days ago" {
		t.Errorf("year 1: %q", got)
	}
}

func TestCondition(t *testing.T) {
	for _, tc := range []struct {
		c    metav1.Condition
		want string
	}{
		{metav1.Condition{Type: keywardenv1alpha1.ConditionClassCompliant, Status: metav1.ConditionTrue, Reason: "Compliant", Message: "The key fits its class"},
			"the key fits its class (Compliant)"},
		{metav1.Condition{Type: keywardenv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "KeyIssued", Message: "The key is issued and its Secret is in place"},
			"the key is issued and verifies. The key is issued and its Secret is in place (KeyIssued)"},
		{metav1.Condition{Type: keywardenv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "ClassNotFound", Message: "APIKeyClass \"x\" does not exist"},
			"the key needs a person: the controller cannot go on without a change. APIKeyClass \"x\" does not exist (ClassNotFound)"},
		{metav1.Condition{Type: "Custom", Status: metav1.ConditionUnknown},
			"Custom is Unknown"},
	} {
		if got := Condition(tc.c); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.c.Type, got, tc.want)
		}
	}
}

func TestSortBy(t *testing.T) {
	base := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	mk := func(name, owner string, created, expires, used time.Duration) keywardenv1alpha1.APIKey {
		k := keywardenv1alpha1.APIKey{}
		k.Namespace, k.Name = "team-a", name
		k.CreationTimestamp = metav1.NewTime(base.Add(created))
		k.Spec.Owner = owner
		if expires != 0 {
			e := metav1.NewTime(base.Add(expires))
			k.Status.ExpiresAt = &e
		}
		if used != 0 {
			u := metav1.NewTime(base.Add(used))
			k.Status.LastUsedAt = &u
		}
		return k
	}
	keys := []keywardenv1alpha1.APIKey{
		mk("b", "Zoe", -time.Hour, 48*time.Hour, 0),
		mk("a", "alice", -2*time.Hour, 0, -time.Minute),
		mk("c", "bob", -time.Hour, 24*time.Hour, -time.Hour),
		mk("d", "alice", -3*time.Hour, 72*time.Hour, 0),
	}
	for _, tc := range []struct {
		field string
		desc  bool
		want  string
	}{
		{"created", true, "b c a d"}, // same second: by name
		{"created", false, "d a b c"},
		{"name", false, "a b c d"},
		{"name", true, "d c b a"},
		{"owner", false, "a d c b"},   // alice (newest first), bob, Zoe: in any case
		{"expires", false, "c b d a"}, // no expiry last
		{"expires", true, "d b c a"},  // no expiry last still
		{"lastUsed", true, "a c b d"},
		{"lastUsed", false, "c a b d"},
	} {
		got := append([]keywardenv1alpha1.APIKey(nil), keys...)
		if err := SortBy(got, tc.field, tc.desc); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range got {
			names = append(names, k.Name)
		}
		if strings.Join(names, " ") != tc.want {
			t.Errorf("by %s (desc %v): %s, want %s", tc.field, tc.desc, strings.Join(names, " "), tc.want)
		}
	}
	if err := SortBy(keys, "secret", false); err == nil || !strings.Contains(err.Error(), "sort by name, owner") {
		t.Errorf("an unknown column: %v", err)
	}
}
