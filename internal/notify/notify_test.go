package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

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
