package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestGenerateFormat(t *testing.T) {
	for _, prefix := range []string{"kw_", "pdm_", "a_", "abcdefghij1_"} {
		raw, err := Generate(prefix)
		if err != nil {
			t.Fatalf("Generate(%q): %v", prefix, err)
		}
		if !strings.HasPrefix(raw, prefix) {
			t.Errorf("key does not start with %q", prefix)
		}
		if got, want := len(raw), len(prefix)+BodyLength+ChecksumLength; got != want {
			t.Errorf("len = %d, want %d", got, want)
		}
		k, err := Parse(raw)
		if err != nil {
			t.Fatalf("Parse of a generated key: %v", err)
		}
		if k.Prefix() != prefix {
			t.Errorf("Prefix() = %q, want %q", k.Prefix(), prefix)
		}
	}
}

func TestGenerateIsRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		raw, err := Generate(DefaultPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if seen[raw] {
			t.Fatal("Generate returned the same key twice")
		}
		seen[raw] = true
	}
}

func TestGenerateDeterministicEncoding(t *testing.T) {
	zeros := bytes.NewReader(make([]byte, RandomBytes))
	raw, err := generate(zeros, "kw_")
	if err != nil {
		t.Fatal(err)
	}
	if want := "kw_" + strings.Repeat("0", BodyLength); raw[:len(want)] != want {
		t.Errorf("all-zero entropy encodes as %q, want body of zeros", raw)
	}
	ones := bytes.NewReader(bytes.Repeat([]byte{0xff}, RandomBytes))
	raw, err = generate(ones, "kw_")
	if err != nil {
		t.Fatal(err)
	}
	// 2^256-1 in base62, computed independently.
	if want := "kw_yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1"; raw[:len(want)] != want {
		t.Errorf("all-ones entropy encodes as %q, want %q", raw[:len(want)], want)
	}
	if _, err := Parse(raw); err != nil {
		t.Errorf("Parse: %v", err)
	}
}

func TestGenerateErrors(t *testing.T) {
	if _, err := Generate("KW_"); err == nil {
		t.Error("Generate accepted an upper-case prefix")
	}
	if _, err := generate(bytes.NewReader([]byte{1, 2, 3}), "kw_"); err == nil {
		t.Error("generate accepted short entropy")
	}
}

func TestValidPrefix(t *testing.T) {
	tests := []struct {
		prefix string
		want   bool
	}{
		{"kw_", true},
		{"pdm_", true},
		{"a_", true},
		{"abcdefghijk_", true},
		{"abcdefghijkl_", false}, // 13 characters
		{"_", false},
		{"kw", false},
		{"Kw_", false},
		{"k-w_", false},
		{"k_w_", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidPrefix(tt.prefix); got != tt.want {
			t.Errorf("ValidPrefix(%q) = %v, want %v", tt.prefix, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	good, err := Generate("kw_")
	if err != nil {
		t.Fatal(err)
	}
	// flip changes one body character to another character of the alphabet.
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	tests := []struct {
		name    string
		raw     string
		wantErr string
	}{
		{"valid", good, ""},
		{"empty", "", "no prefix"},
		{"no prefix", good[3:], "no prefix"},
		{"upper-case prefix", "KW_" + good[3:], "invalid prefix"},
		{"too short", good[:len(good)-1], "wrong length"},
		{"too long", good + "0", "wrong length"},
		{"bad body character", good[:10] + "-" + good[11:], "invalid character"},
		{"bad checksum character", good[:len(good)-1] + "!", "invalid character"},
		{"body typo", flip(good, 10), "checksum mismatch"},
		{"checksum typo", flip(good, len(good)-2), "checksum mismatch"},
		{"other prefix", "pdm_" + good[3:], "checksum mismatch"},
		{"unicode", "kw_" + strings.Repeat("é", 24) + "a", "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.raw)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted a bad key, want %q", tt.wantErr)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if len(tt.raw) > 8 && strings.Contains(err.Error(), tt.raw[3:]) {
				t.Errorf("error quotes the key")
			}
		})
	}
}

func TestHashAndDisplayPrefix(t *testing.T) {
	raw, err := Generate("kw_")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(raw))
	if got, want := Hash(raw), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Hash = %q, want %q", got, want)
	}
	if got := DisplayPrefix("kw_"); got != "kw_" {
		t.Errorf("DisplayPrefix of a short string = %q", got)
	}
}

func TestDisplayPrefixShowsPartOfTheBody(t *testing.T) {
	const body = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg" + "XXXXXX"
	for _, tc := range []struct{ prefix, want string }{
		{"kw_", "kw_01234"},
		{"pdm_", "pdm_0123"},
		{"abcde_", "abcde_0123"},
		{"abcdefghijk_", "abcdefghijk_0123"},
	} {
		if got := DisplayPrefix(tc.prefix + body); got != tc.want {
			t.Errorf("DisplayPrefix with prefix %q = %q, want %q", tc.prefix, got, tc.want)
		}
		if len(tc.want) > MaxDisplayPrefixLength {
			t.Errorf("%q is longer than MaxDisplayPrefixLength", tc.want)
		}
	}
	// Two keys of a class with a 12-character prefix have different
	// display prefixes.
	seen := map[string]bool{}
	for range 20 {
		raw, err := Generate("abcdefghijk_")
		if err != nil {
			t.Fatal(err)
		}
		seen[DisplayPrefix(raw)] = true
	}
	if len(seen) < 2 {
		t.Error("20 keys of a 12-character prefix share one display prefix")
	}
}

func TestQuoted(t *testing.T) {
	raw, err := Generate("kw_")
	if err != nil {
		t.Fatal(err)
	}
	other, err := Generate("kw_")
	if err != nil {
		t.Fatal(err)
	}
	body := raw[3 : 3+BodyLength]
	b64 := func(enc *base64.Encoding, s string) string { return enc.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, text string
		want       bool
	}{
		{"in the clear", "denied: " + raw + "!", true},
		{"the body alone", "value ..." + body + "...", true},
		{"base64, as JSON carries Secret data", `{"data":{"key":"` + b64(base64.StdEncoding, raw) + `"}}`, true},
		{"base64 URL", b64(base64.URLEncoding, raw), true},
		{"base64 of a blob, one byte in", b64(base64.StdEncoding, "x"+raw+"y"), true},
		{"base64 of a blob, two bytes in", b64(base64.StdEncoding, "xy"+raw), true},
		{"hex", "0x" + hex.EncodeToString([]byte(raw)), true},
		{"upper-case hex", strings.ToUpper(hex.EncodeToString([]byte(raw))), true},
		{"cut short", "value " + raw[:30] + "...", true},
		{"base64 of the first 30 characters", b64(base64.StdEncoding, raw[:30]), true},
		{"hex of a piece of the body", hex.EncodeToString([]byte(body[10:30])), true},
		{"another key", "denied: " + other + " " + b64(base64.StdEncoding, other), false},
		{"the key's hash", "recorded " + Hash(raw), false},
		{"the display prefix", "key " + DisplayPrefix(raw) + "... was issued", false},
		{"nothing", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Quoted(tc.text, raw); got != tc.want {
				t.Errorf("Quoted = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzParse feeds arbitrary strings to Parse: it must never panic, must accept
// exactly the strings whose checksum matches, and must never quote its input.
func FuzzParse(f *testing.F) {
	good, err := Generate("kw_")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, "", "_", "kw_", "pdm_" + good[3:], good[:20], good + good, "kw_\x00\xff", strings.Repeat("_", 60)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		k, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if len(raw) > 40 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error quotes the input")
			}
			return
		}
		if !ValidPrefix(k.Prefix()) || !strings.HasPrefix(raw, k.Prefix()) {
			t.Fatalf("accepted key has prefix %q", k.Prefix())
		}
		body := raw[len(k.Prefix()):]
		if len(body) != BodyLength+ChecksumLength {
			t.Fatalf("accepted key with body length %d", len(body))
		}
		if encodeChecksum(checksum(raw[:len(raw)-ChecksumLength])) != raw[len(raw)-ChecksumLength:] {
			t.Fatalf("accepted key with a wrong checksum")
		}
	})
}

// TestFormatVectors pins the format with keys computed outside this
// package (Python's int.to_bytes base62 and zlib.crc32), so that a change
// of the body encoding or of the checksum algorithm fails here.
func TestFormatVectors(t *testing.T) {
	seq := make([]byte, RandomBytes)
	for i := range seq {
		seq[i] = byte(i)
	}
	for _, tc := range []struct {
		prefix string
		random []byte
		want   string
	}{
		{"kw_", seq, "kw_003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf45YXCo"},
		{"pdm_", bytes.Repeat([]byte{0xff}, RandomBytes), "pdm_yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp10FB5yL"},
		{"abcdefghijk_", make([]byte, RandomBytes), "abcdefghijk_000000000000000000000000000000000000000000035lzt1"},
	} {
		got, err := generate(bytes.NewReader(tc.random), tc.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("generate(%x, %q) = %q, want %q", tc.random[:4], tc.prefix, got, tc.want)
		}
		if _, err := Parse(tc.want); err != nil {
			t.Errorf("Parse(%q) = %v", tc.want, err)
		}
	}
}
