package seal

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

const (
	uidA  = types.UID("0b6c3e0e-4a9b-4a53-9d7e-0f3c1b8f2a11")
	uidB  = types.UID("7d1f6a52-1e5c-4c0f-8a44-3c2b9d7e6f00")
	hashA = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	hashB = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func ring(t *testing.T, keys map[string][]byte) *Keyring {
	t.Helper()
	kr, err := NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSealVerifies(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, 32)
	k2 := bytes.Repeat([]byte{2}, 32)
	one := ring(t, map[string][]byte{"k1": k1})
	both := ring(t, map[string][]byte{"k1": k1, "k2": k2})
	other := ring(t, map[string][]byte{"k1": k2})
	good := one.Seal(uidA, 0, hashA)
	if !strings.HasPrefix(good, "v1.k1.") {
		t.Fatalf("seal %q does not name its version and key", good)
	}
	tamper := func(s string) string {
		b := []byte(s)
		b[len(b)-2] ^= 1
		return string(b)
	}
	for _, tc := range []struct {
		name     string
		kr       *Keyring
		uid      types.UID
		serial   int64
		hash     string
		seal     string
		verifies bool
	}{
		{"the seal of the key for the APIKey", one, uidA, 0, hashA, good, true},
		{"a rotated keyring still verifies the old key's seals", both, uidA, 0, hashA, good, true},
		{"another APIKey", one, uidB, 0, hashA, good, false},
		{"another key", one, uidA, 0, hashB, good, false},
		{"a later key of the same APIKey", one, uidA, 1, hashA, good, false},
		{"another sealing key of the same ID", other, uidA, 0, hashA, good, false},
		{"a changed HMAC", one, uidA, 0, hashA, tamper(good), false},
		{"another version", one, uidA, 0, hashA, "v2" + good[2:], false},
		{"an unknown key ID", one, uidA, 0, hashA, strings.Replace(good, ".k1.", ".k9.", 1), false},
		{"no seal", one, uidA, 0, hashA, "", false},
		{"garbage", one, uidA, 0, hashA, "v1.k1.!!!", false},
		{"a nil keyring", nil, uidA, 0, hashA, good, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.kr.Verify(tc.uid, tc.serial, tc.hash, tc.seal); got != tc.verifies {
				t.Errorf("Verify = %v, want %v", got, tc.verifies)
			}
		})
	}
	if s := both.Seal(uidA, 0, hashA); !strings.HasPrefix(s, "v1.k2.") {
		t.Errorf("a rotated keyring seals with %q, want the greatest ID k2", s)
	}
	if !both.Knows(good) || one.Knows(both.Seal(uidA, 0, hashA)) {
		t.Error("Knows does not tell known from unknown keys")
	}
}

func TestSealIsHMACSHA256OfUIDAndHash(t *testing.T) {
	// Fixed vector, computed independently:
	//   printf 'keywarden.dev/seal/v1\0%s\0%s\0%s' "$uidA" 0 "$hashA" |
	//     openssl dgst -sha256 -mac HMAC -macopt hexkey:$(printf '01%.0s' $(seq 32)) -binary | basenc --base64url | tr -d =
	kr := ring(t, map[string][]byte{"k1": bytes.Repeat([]byte{1}, 32)})
	const want = "v1.k1.ygsojUsTo2nX5kCH8gacXohub3NReRba8j2hwbWQKv4"
	if got := kr.Seal(uidA, 0, hashA); got != want {
		t.Errorf("Seal = %q, want %q", got, want)
	}
}

func TestNewKeyringRefusesWeakKeys(t *testing.T) {
	for name, keys := range map[string]map[string][]byte{
		"none":           {},
		"short":          {"k1": make([]byte, 31)},
		"ID with a dot":  {"k.1": make([]byte, 32)},
		"ID too long":    {strings.Repeat("k", 64): make([]byte, 32)},
		"empty ID":       {"": make([]byte, 32)},
		"one bad of two": {"k1": make([]byte, 32), "k2": make([]byte, 8)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewKeyring(keys); err == nil {
				t.Error("NewKeyring accepted it")
			}
		})
	}
}

// newStore returns a store on a fake client with a clock that stands
// still, and the count of its reads of the Secret.
func newStore(t *testing.T, objs ...client.Object) (*Store, *int, *time.Time) {
	t.Helper()
	var gets int
	c := fake.NewClientBuilder().WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, key, obj, opts...)
		},
	}).Build()
	now := time.Unix(1_800_000_000, 0)
	return &Store{Client: c, Secret: types.NamespacedName{Namespace: "keywarden-system", Name: "keywarden-sealing-key"},
		Now: func() time.Time { return now }}, &gets, &now
}

func TestStoreCreatesTheSecretOnce(t *testing.T) {
	ctx := context.Background()
	s, _, _ := newStore(t)
	if err := s.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{}
	if err := s.Client.Get(ctx, s.Secret, sec); err != nil {
		t.Fatal(err)
	}
	if sec.Type != SecretType || len(sec.Data) != 1 || len(sec.Data["k1800000000"]) != MinKeyBytes {
		t.Fatalf("Secret = type %q, data keys %d; want one 32-byte key k1800000000", sec.Type, len(sec.Data))
	}
	if bytes.Equal(sec.Data["k1800000000"], make([]byte, MinKeyBytes)) {
		t.Fatal("the sealing key is all zeroes")
	}
	seal, err := s.Seal(ctx, uidA, 0, hashA)
	if err != nil {
		t.Fatal(err)
	}

	// A second replica reads the same Secret and verifies the first's seal.
	other := &Store{Client: s.Client, Secret: s.Secret, Now: s.Now}
	ok, err := other.Verify(ctx, uidA, 0, hashA, seal)
	if err != nil || !ok {
		t.Fatalf("another replica's Verify = %v, %v; want true", ok, err)
	}
}

func TestStorePicksUpAddedKeys(t *testing.T) {
	ctx := context.Background()
	old := bytes.Repeat([]byte{1}, 32)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "keywarden-system", Name: "keywarden-sealing-key"},
		Type: SecretType, Data: map[string][]byte{"k1": old, "junk": []byte("short")}}
	s, gets, now := newStore(t, sec)
	before, err := s.Seal(ctx, uidA, 0, hashA)
	if err != nil || !strings.HasPrefix(before, "v1.k1.") {
		t.Fatalf("Seal = %q, %v; want a seal by k1 (the short entry is skipped)", before, err)
	}

	// Another replica rotates: k2 is added. A seal made with it is
	// verified after one read of the Secret.
	sec.Data["k2"] = bytes.Repeat([]byte{2}, 32)
	if err := s.Client.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	rotated := ring(t, map[string][]byte{"k2": sec.Data["k2"]}).Seal(uidA, 0, hashA)
	*now = now.Add(time.Minute)
	n := *gets
	ok, err := s.Verify(ctx, uidA, 0, hashA, rotated)
	if err != nil || !ok {
		t.Fatalf("Verify of a seal by the added key = %v, %v", ok, err)
	}
	if *gets != n+1 {
		t.Errorf("%d reads of the Secret for an unknown key, want 1", *gets-n)
	}
	if ok, _ := s.Verify(ctx, uidA, 0, hashA, before); !ok {
		t.Error("the old key's seal no longer verifies after rotation")
	}

	// Forged seals naming unknown keys do not make it read the Secret on
	// every call.
	n = *gets
	for range 100 {
		if ok, _ := s.Verify(ctx, uidA, 0, hashA, "v1.k9.AAAA"); ok {
			t.Fatal("a forged seal verified")
		}
	}
	if *gets != n {
		t.Errorf("%d reads of the Secret for 100 forged seals within seconds, want 0", *gets-n)
	}
}

func TestStoreRefusesASecretWithoutUsableKeys(t *testing.T) {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "keywarden-system", Name: "keywarden-sealing-key"},
		Data: map[string][]byte{"k1": []byte("too short")}}
	s, _, _ := newStore(t, sec)
	err := s.Ensure(context.Background())
	if err == nil || !strings.Contains(err.Error(), "holds no usable key") {
		t.Fatalf("Ensure = %v, want an error naming the problem", err)
	}
	if strings.Contains(err.Error(), "too short") {
		t.Fatal("the error quotes the Secret's data")
	}
}
