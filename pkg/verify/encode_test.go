package verify

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
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
