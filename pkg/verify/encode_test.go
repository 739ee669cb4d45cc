package verify

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// TestAnswersEncodeAsEncodingJSON: the hand-written answer is byte for byte
// what encoding/json writes, for answers as they are and for strings of
// every awkward kind.
func TestAnswersEncodeAsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 30, 0, 123456789, time.FixedZone("x", 3600))
	awkward := []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnewline\ncr\rbell\x07nul\x00",
		"\x1f\x7f", "é ü 漢字 🔑", "bad \xff utf-8 \xc3", "line\u2028para\u2029", "\ufffd", "\b\f"}
	answers := []VerifyResponse{
		{},
		{Code: CodeNotFound},
		{Valid: true, Namespace: "shop", Name: "checkout", Class: "payments", Owner: "team@example.com", Role: "readonly",
			Scopes: []string{"logs:read", "orders:write"}, ExpiresAt: &at, KeyPrefix: "kw_ab12"},
	}
	for _, s := range awkward {
		answers = append(answers, VerifyResponse{Valid: true, Namespace: s, Name: s, Class: s, Owner: s, Role: s, Scopes: []string{s, s}, KeyPrefix: s, Code: Code(s)})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		answers = append(answers, VerifyResponse{Owner: string(b)})
	}
	for _, a := range answers {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(&a); err != nil {
			t.Fatal(err)
		}
		if got := a.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("for %+q\n got %s\nwant %s", a.Owner, got, want.Bytes())
		}
	}
}

// TestIndexedAnswers: the answer written when a key is indexed is byte for
// byte the one its fields give, and the fields pointed into it keep their
// values, for keys of awkward strings in every field.
func TestIndexedAnswers(t *testing.T) {
	awkward := []string{"plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnewline\n", "é ü 漢字 🔑",
		"bad \xff utf-8", "valid", "namespace", `"`, "readonly", "logs:read"}
	at := metav1.NewTime(time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))
	ix := NewIndex()
	for i, s := range awkward {
		raw, k := issued(t, "ns-"+strconv.Itoa(i), "key", func(k *keywardenv1alpha1.APIKey) {
			k.Status.Owner, k.Status.Role = s, s
			k.Status.Scopes = []keywardenv1alpha1.Scope{keywardenv1alpha1.Scope(s), "logs:read", "z"}
			k.Status.ClassName = s
			k.Status.ExpiresAt = &at
			if i%2 == 0 {
				k.Status.ExpiresAt = nil
			}
		})
		ix.Upsert(k)
		res := ix.Verify(Request{Key: raw, Namespaces: []string{k.Namespace}}, t0)
		if !res.Valid {
			t.Fatalf("%q: %s", s, res.Code)
		}
		fields := VerifyResponse{
			Valid: true, Namespace: res.Namespace, Name: res.Name, Class: res.Class, Owner: res.Owner, Role: res.Role,
			Scopes: res.Scopes, ExpiresAt: res.ExpiresAt, KeyPrefix: res.KeyPrefix,
		}
		if want := string(fields.appendJSON(nil)); res.answer != want {
			t.Fatalf("%q: indexed answer\n %s\nwant\n %s", s, res.answer, want)
		}
		if res.Owner != s || res.Role != s || res.Class != s || !slices.Contains(res.Scopes, s) || res.Namespace != k.Namespace || res.Name != "key" {
			t.Fatalf("%q: fields changed: %+v", s, res)
		}
	}
}
