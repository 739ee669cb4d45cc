package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time {
	t := metav1.NewTime(t0.Add(d))
	return &t
}

func key(raw string) *keywardenv1alpha1.APIKey {
	return &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "wordpress-purge", UID: "uid-1"},
		Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "WordPress purge", Owner: "alice@example.com", Role: "standard"},
		Status: keywardenv1alpha1.APIKeyStatus{
			Phase: keywardenv1alpha1.PhaseActive, Owner: "alice@example.com", Role: "standard", ClassName: "web",
			KeyHash: keys.Hash(raw), KeyPrefix: keys.DisplayPrefix(raw), ExpiresAt: at(30 * keywardenv1alpha1.Day),
			History: []keywardenv1alpha1.HistoryEntry{
				{At: *at(0), Event: keywardenv1alpha1.EventKeyIssued, Message: "Key kw_abcd... was issued"},
				{At: *at(time.Hour), Event: keywardenv1alpha1.EventKeyRotated, Message: "The key rotated"},
				{At: *at(2 * time.Hour), Event: "SomethingUnlisted", Message: "not a notification"},
				{At: *at(3 * time.Hour), Event: keywardenv1alpha1.EventKeyRevoked, Message: "Revoked: KeyReported"},
			},
		},
	}
}

func TestFromHistory(t *testing.T) {
	raw, err := keys.Generate("kw_")
	if err != nil {
		t.Fatal(err)
	}
	k := key(raw)
	got := FromHistory(k)
	var types []string
	for _, e := range got {
		types = append(types, e.Type)
	}
	if want := []string{TypeCreated, TypeRotated, TypeRevoked}; strings.Join(types, " ") != strings.Join(want, " ") {
		t.Fatalf("types %v, want %v", types, want)
	}
	e := got[0]
	if e.SpecVersion != "1.0" || e.Subject != "team-a/wordpress-purge" || e.Source != "/apis/keywarden.dev/v1alpha1/namespaces/team-a/apikeys/wordpress-purge" ||
		!e.Time.Equal(t0) || e.Data.Key.Owner != "alice@example.com" || e.Data.Key.Class != "web" || e.Data.Event != keywardenv1alpha1.EventKeyIssued {
		t.Errorf("the created notification: %+v", e)
	}
	// The same transition has the same id however often it is built; two
	// transitions never share one.
	again := FromHistory(key(raw))
	seen := map[string]bool{}
	for i := range got {
		if got[i].ID != again[i].ID {
			t.Errorf("%s: id %s, then %s", got[i].Type, got[i].ID, again[i].ID)
		}
		if seen[got[i].ID] {
			t.Errorf("%s: id %s used twice", got[i].Type, got[i].ID)
		}
		seen[got[i].ID] = true
	}
	// Another key's transition at the same time has another id.
	other := key(raw)
	other.UID = "uid-2"
	if FromHistory(other)[0].ID == got[0].ID {
		t.Error("two keys' transitions at the same time share an id")
	}
	// Never the key, nor its hash, in what is sent.
	for _, e := range got {
		body, err := e.Body()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(body, []byte(raw)) || bytes.Contains(body, []byte(k.Status.KeyHash)) ||
			bytes.Contains(body, []byte(strings.TrimPrefix(k.Status.KeyHash, "sha256:"))) {
			t.Errorf("%s carries the key or its hash", e.Type)
		}
		var back map[string]any
		if err := json.Unmarshal(body, &back); err != nil || back["specversion"] != "1.0" || back["datacontenttype"] != "application/json" {
			t.Errorf("%s is not a structured CloudEvent: %s", e.Type, body)
		}
	}
}

func TestExpiring(t *testing.T) {
	day := keywardenv1alpha1.Day
	for _, tc := range []struct {
		name    string
		warning time.Duration
		now     time.Duration
		phase   keywardenv1alpha1.APIKeyPhase
		want    int
	}{
		{"well before the warning", 7 * day, 10 * day, keywardenv1alpha1.PhaseActive, 0},
		{"at the class's warning", 7 * day, 23 * day, keywardenv1alpha1.PhaseActive, 1},
		{"a day before", 7 * day, 29 * day, keywardenv1alpha1.PhaseActive, 2},
		{"a warning of a day: once", day, 29*day + time.Hour, keywardenv1alpha1.PhaseActive, 1},
		{"a warning shorter than a day", 12 * time.Hour, 29*day + 13*time.Hour, keywardenv1alpha1.PhaseActive, 1},
		{"warnings off", 0, 29 * day, keywardenv1alpha1.PhaseActive, 0},
		{"expired already", 7 * day, 31 * day, keywardenv1alpha1.PhaseActive, 0},
		{"revoked", 7 * day, 29 * day, keywardenv1alpha1.PhaseRevoked, 0},
	} {
		k := key("kw_x")
		k.Status.Phase = tc.phase
		got := Expiring(k, tc.warning, t0.Add(tc.now))
		if len(got) != tc.want {
			t.Errorf("%s: %d warnings, want %d", tc.name, len(got), tc.want)
			continue
		}
		// Computed later, the same warnings with the same ids.
		later := Expiring(k, tc.warning, t0.Add(tc.now+time.Minute))
		for i := range got {
			if got[i].Type != TypeExpiring || got[i].ID != later[i].ID {
				t.Errorf("%s: warning %d is %s %s, then %s", tc.name, i, got[i].Type, got[i].ID, later[i].ID)
			}
		}
	}
}

func TestSignAndVerify(t *testing.T) {
	body := []byte(`{"specversion":"1.0","id":"x"}`)
	secret, other := []byte("the shared secret"), []byte("another secret")
	header := Sign(body, t0, secret)
	for _, tc := range []struct {
		name   string
		body   []byte
		header string
		secret []byte
		now    time.Time
		want   error
	}{
		{"as sent", body, header, secret, t0.Add(time.Minute), nil},
		{"signed with the old and the new secret while it is replaced", body, Sign(body, t0, other, secret), secret, t0, nil},
		// Attacks.
		{"a body changed on the way", []byte(`{"specversion":"1.0","id":"y"}`), header, secret, t0, ErrBadSignature},
		{"signed with another secret", body, Sign(body, t0, other), secret, t0, ErrBadSignature},
		{"replayed an hour later", body, header, secret, t0.Add(time.Hour), ErrTooOld},
		{"a timestamp moved without its signature", body, strings.Replace(header, "t=", "t=1", 1), secret, t0, ErrTooOld},
		{"a fresh timestamp on an old signature", body, "t=" + strconvUnix(t0.Add(time.Hour)) + "," + strings.SplitN(header, ",", 2)[1], secret, t0.Add(time.Hour), ErrBadSignature},
		{"no header", body, "", secret, t0, ErrNoSignature},
		{"no signature", body, "t=" + strconvUnix(t0), secret, t0, ErrNoSignature},
		{"garbage", body, "v1", secret, t0, ErrNoSignature},
		{"a receiver without a secret", body, Sign(body, t0, nil), nil, t0, ErrNoSignature},
	} {
		if err := Verify(tc.body, tc.header, tc.secret, tc.now, 5*time.Minute); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func strconvUnix(t time.Time) string {
	b, _ := json.Marshal(t.Unix())
	return string(b)
}

func TestDueAndAcknowledge(t *testing.T) {
	day := keywardenv1alpha1.Day
	k := key("kw_x")
	k.Status.History = k.Status.History[:2] // issued at t0, rotated at t0+1h
	k.Status.Revocation = nil
	ids := func(es []Event) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Type)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		since time.Duration
		now   time.Duration
		want  []string
	}{
		{"everything since the class notifies", 0, 2 * time.Hour, []string{TypeCreated, TypeRotated}},
		{"the receiver was added after the issue", 30 * time.Minute, 2 * time.Hour, []string{TypeRotated}},
		{"in the warning", 0, 24 * day, []string{TypeCreated, TypeRotated, TypeExpiring}},
		{"a day before: only the later warning", 0, 29*day + time.Hour, []string{TypeCreated, TypeRotated, TypeExpiring}},
	} {
		due := Due(k, 7*day, t0.Add(tc.since), t0.Add(tc.now))
		if strings.Join(ids(due), " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: due %v, want %v", tc.name, ids(due), tc.want)
		}
	}
	// A day before expiry, the one-day warning supersedes the seven-day one.
	due := Due(k, 7*day, time.Time{}, t0.Add(29*day+time.Hour))
	if w := due[len(due)-1]; !w.Time.Equal(t0.Add(29 * day)) {
		t.Errorf("the warning due a day before is the one of %s", w.Time)
	}

	// Acknowledged one by one, in order; nothing is pending after all were.
	due = Due(k, 7*day, time.Time{}, t0.Add(24*day))
	var notified []string
	for i := range due {
		p := Pending(due, notified)
		if len(p) != len(due)-i || p[0].ID != due[i].ID {
			t.Fatalf("step %d: pending %v", i, ids(p))
		}
		notified = Acknowledge(due, notified, p[0].ID)
	}
	if p := Pending(due, notified); len(p) != 0 {
		t.Errorf("pending after all were acknowledged: %v", ids(p))
	}
	// An expiry moved: its old warning's id goes from the list when the
	// next acknowledgement is written, and the new warning is pending.
	k.Status.ExpiresAt = at(40 * day)
	due2 := Due(k, 7*day, time.Time{}, t0.Add(34*day))
	p := Pending(due2, notified)
	if len(p) != 1 || p[0].Type != TypeExpiring {
		t.Fatalf("after the expiry moved, pending %v", ids(p))
	}
	if got := Acknowledge(due2, notified, p[0].ID); len(got) != 3 || slices.Contains(got, due[2].ID) {
		t.Errorf("acknowledged %v: the old warning stays, or one is missing", got)
	}
}

func TestNextWarningAndShortLivedKeys(t *testing.T) {
	day := keywardenv1alpha1.Day
	k := key("kw_x")
	k.Status.IssuedAt = at(0) // expires at 30 days
	if got := NextWarning(k, 7*day, t0); !got.Equal(t0.Add(23 * day)) {
		t.Errorf("next warning %s, want at 23 days", got)
	}
	if got := NextWarning(k, 7*day, t0.Add(23*day)); !got.Equal(t0.Add(29 * day)) {
		t.Errorf("after the first warning, next %s, want a day before expiry", got)
	}
	if got := NextWarning(k, 7*day, t0.Add(29*day)); !got.IsZero() {
		t.Errorf("after the last warning, next %s", got)
	}
	// A key issued for three days under a week's warning was meant to be
	// short-lived: it is warned never, as its condition is not set.
	k.Status.ExpiresAt = at(3 * day)
	if got := Expiring(k, 7*day, t0.Add(2*day+time.Hour)); len(got) != 0 {
		t.Errorf("a three-day key: %d warnings", len(got))
	}
	if got := NextWarning(k, 7*day, t0); !got.IsZero() {
		t.Errorf("a three-day key's next warning %s", got)
	}
	// A class's warning changed: the same expiry's warnings keep their ids.
	k.Status.ExpiresAt = at(30 * day)
	week, fiveDays := Expiring(k, 7*day, t0.Add(29*day+time.Hour)), Expiring(k, 5*day, t0.Add(29*day+time.Hour))
	if len(week) != 2 || len(fiveDays) != 2 || week[0].ID != fiveDays[0].ID || week[1].ID != fiveDays[1].ID {
		t.Errorf("a class's warning changed from 7 to 5 days: the warnings' ids changed")
	}
	k.Status.ExpiresAt = at(3 * day)
	// A key issued for a day is warned never.
	k.Status.ExpiresAt = at(day)
	if got := Expiring(k, 7*day, t0.Add(23*time.Hour)); len(got) != 0 {
		t.Errorf("a one-day key is warned: %d", len(got))
	}
}

func TestRevokedSaysWhy(t *testing.T) {
	k := key("kw_x")
	k.Status.Revocation = &keywardenv1alpha1.Revocation{Reason: keywardenv1alpha1.EventKeyReported, Message: "reported"}
	evs := FromHistory(k)
	if r := evs[len(evs)-1]; r.Type != TypeRevoked || r.Data.Reason != keywardenv1alpha1.EventKeyReported {
		t.Errorf("revoked by a report: %+v", r.Data)
	}
	k.Status.Revocation = nil
	if r := FromHistory(k)[2]; r.Data.Reason != ReasonSpec {
		t.Errorf("revoked in the spec: reason %q", r.Data.Reason)
	}
	if FromHistory(k)[0].Data.Reason != "" {
		t.Error("a created notification has a reason")
	}
}

func TestSharedSecret(t *testing.T) {
	v1, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := NewSecret()
	if v1 == v2 || !strings.HasPrefix(v1, "kwss_") || len(v1) < 40 {
		t.Fatalf("secrets %q and %q", v1, v2)
	}
	s := Rotate(nil, "keywarden-system", "web", v1, 24*time.Hour, t0)
	if s.Name != "keywarden-notify-web" || s.Type != SecretType || len(s.Data) != 1 {
		t.Fatalf("first secret: %+v", s)
	}
	got, err := SigningSecrets(s, t0)
	if err != nil || len(got) != 1 || string(got[0]) != v1 {
		t.Fatalf("signing secrets %q, %v", got, err)
	}
	// Rotated: both sign during the overlap, the new one alone after it.
	s = Rotate(s, "keywarden-system", "web", v2, 24*time.Hour, t0.Add(time.Hour))
	if got, _ := SigningSecrets(s, t0.Add(2*time.Hour)); len(got) != 2 || string(got[0]) != v2 || string(got[1]) != v1 {
		t.Errorf("during the overlap: %d secrets", len(got))
	}
	if got, _ := SigningSecrets(s, t0.Add(26*time.Hour)); len(got) != 1 || string(got[0]) != v2 {
		t.Errorf("after the overlap: %d secrets", len(got))
	}
	// Rotated with no overlap: the old one stops at once.
	s = Rotate(s, "keywarden-system", "web", v1, 0, t0.Add(2*time.Hour))
	if got, _ := SigningSecrets(s, t0.Add(2*time.Hour)); len(got) != 1 || s.Data[PreviousField] != nil {
		t.Errorf("no overlap: %d secrets", len(got))
	}
	// Attacks: a secret too short to resist guessing, or none, signs nothing;
	// a previous secret without its end date does not sign.
	for name, sec := range map[string]*corev1.Secret{
		"empty":     {},
		"too short": {Data: map[string][]byte{SecretField: []byte("hunter2")}},
	} {
		if _, err := SigningSecrets(sec, t0); !errors.Is(err, ErrNoSecret) {
			t.Errorf("%s: %v", name, err)
		}
	}
	noEnd := &corev1.Secret{Data: map[string][]byte{SecretField: []byte(v1), PreviousField: []byte(v2)}}
	if got, _ := SigningSecrets(noEnd, t0); len(got) != 1 {
		t.Errorf("a previous secret without its end signs")
	}
}

func TestDueAtDeletion(t *testing.T) {
	k := key("kw_x")
	k.Status.History = k.Status.History[:1]
	deleted := metav1.NewTime(t0.Add(2 * time.Hour))
	k.DeletionTimestamp = &deleted
	due := DueAtDeletion(k, 7*keywardenv1alpha1.Day, time.Time{}, t0.Add(3*time.Hour))
	if len(due) != 2 || due[0].Type != TypeCreated || due[1].Type != TypeDeleted || !due[1].Time.Equal(deleted.Time) {
		t.Fatalf("due at deletion: %+v", due)
	}
	// The same deletion seen later keeps its id.
	if again := DueAtDeletion(k, 7*keywardenv1alpha1.Day, time.Time{}, t0.Add(5*time.Hour)); again[1].ID != due[1].ID {
		t.Error("the deletion's id changed")
	}
}
