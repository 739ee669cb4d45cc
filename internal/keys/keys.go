// Package keys defines the format of Keywarden API keys: generation from
// crypto/rand, the base62 body, the CRC32 checksum that lets anyone reject a
// mistyped or invented key without a lookup, the SHA-256 hash kept in status
// and the short display prefix.
//
// A raw key is <prefix><body><checksum>:
//
//   - prefix: 2 to 12 characters of [a-z0-9] ending in '_' (kw_ by default),
//   - body: the 32 random bytes as a big-endian number in base62, 43 characters,
//   - checksum: CRC32 (IEEE) of prefix and body in base62, 6 characters.
package keys

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/big"
	"strings"
)

const (
	// DefaultPrefix is the prefix of keys whose class does not name one.
	DefaultPrefix = "kw_"

	// RandomBytes is how many bytes of crypto/rand entropy a key carries.
	RandomBytes = 32
	// BodyLength is the length of the base62 encoding of RandomBytes.
	BodyLength = 43
	// ChecksumLength is the length of the base62 encoding of a CRC32.
	ChecksumLength = 6
	// DisplayPrefixLength is how many leading characters of a key are shown
	// in status and listings, at least: a key's display prefix always has
	// DisplayBodyLength characters of its body besides its class prefix.
	DisplayPrefixLength = 8
	// DisplayBodyLength is the least number of characters of the body that
	// a display prefix shows, so that keys of a long class prefix can still
	// be told apart.
	DisplayBodyLength = 4
	// MaxDisplayPrefixLength is the longest display prefix.
	MaxDisplayPrefixLength = MaxPrefixLength + DisplayBodyLength

	// MinPrefixLength and MaxPrefixLength bound a prefix, '_' included.
	MinPrefixLength = 2
	MaxPrefixLength = 12

	// HashPrefix starts every stored key hash.
	HashPrefix = "sha256:"
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ErrMalformed is wrapped by every error Parse returns. Its messages never
// contain the key itself.
var ErrMalformed = errors.New("malformed key")

var base = big.NewInt(62)

// digit maps a byte to its base62 value, or -1.
var digit = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// ValidPrefix reports whether p can start a key: 2 to 12 characters of
// [a-z0-9] with a final '_'.
func ValidPrefix(p string) bool { return validPrefix([]byte(p)) }

func validPrefix(p []byte) bool {
	if len(p) < MinPrefixLength || len(p) > MaxPrefixLength || p[len(p)-1] != '_' {
		return false
	}
	for i := 0; i < len(p)-1; i++ {
		c := p[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Generate returns a new raw key with the given prefix, reading entropy from
// crypto/rand.
func Generate(prefix string) (string, error) {
	return generate(rand.Reader, prefix)
}

func generate(r io.Reader, prefix string) (string, error) {
	if !ValidPrefix(prefix) {
		return "", fmt.Errorf("invalid key prefix %q: want 2-12 characters of [a-z0-9] ending in '_'", prefix)
	}
	var buf [RandomBytes]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	var b strings.Builder
	b.Grow(len(prefix) + BodyLength + ChecksumLength)
	b.WriteString(prefix)
	b.WriteString(encodeBody(buf[:]))
	b.WriteString(encodeChecksum(checksum(b.String())))
	return b.String(), nil
}

// encodeBody writes the bytes as a big-endian number in base62, left-padded
// with '0' to BodyLength.
func encodeBody(p []byte) string {
	n := new(big.Int).SetBytes(p)
	out := make([]byte, BodyLength)
	mod := new(big.Int)
	for i := BodyLength - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = alphabet[mod.Int64()]
	}
	return string(out)
}

func checksum(s string) uint32 { return crc32.ChecksumIEEE([]byte(s)) }

func encodeChecksum(c uint32) string {
	var out [ChecksumLength]byte
	v := uint64(c)
	for i := ChecksumLength - 1; i >= 0; i-- {
		out[i] = alphabet[v%62]
		v /= 62
	}
	return string(out[:])
}

func decodeChecksum(s []byte) (uint64, bool) {
	var v uint64
	for i := 0; i < len(s); i++ {
		d := digit[s[i]]
		if d < 0 {
			return 0, false
		}
		v = v*62 + uint64(d)
	}
	return v, true
}

// Key is a parsed, well-formed raw key.
type Key struct {
	raw    string
	prefix string
}

// Prefix is the class prefix the key starts with, '_' included.
func (k Key) Prefix() string { return k.prefix }

// Parse checks the format and checksum of a raw key without any lookup. Its
// errors wrap ErrMalformed and never quote the key.
func Parse(raw string) (Key, error) {
	n, err := check([]byte(raw))
	if err != nil {
		return Key{}, err
	}
	return Key{raw: raw, prefix: raw[:n]}, nil
}

// Check is Parse for a key held as bytes, for callers that hash the same
// bytes next and want no copy.
func Check(raw []byte) error {
	_, err := check(raw)
	return err
}

// check validates raw and returns the length of its prefix.
func check(raw []byte) (int, error) {
	i := bytes.LastIndexByte(raw, '_')
	if i < 0 {
		return 0, fmt.Errorf("%w: no prefix", ErrMalformed)
	}
	if !validPrefix(raw[:i+1]) {
		return 0, fmt.Errorf("%w: invalid prefix", ErrMalformed)
	}
	rest := raw[i+1:]
	if len(rest) != BodyLength+ChecksumLength {
		return 0, fmt.Errorf("%w: wrong length", ErrMalformed)
	}
	for _, c := range rest[:BodyLength] {
		if digit[c] < 0 {
			return 0, fmt.Errorf("%w: invalid character", ErrMalformed)
		}
	}
	want, ok := decodeChecksum(rest[BodyLength:])
	if !ok {
		return 0, fmt.Errorf("%w: invalid character", ErrMalformed)
	}
	if want != uint64(crc32.ChecksumIEEE(raw[:len(raw)-ChecksumLength])) {
		return 0, fmt.Errorf("%w: checksum mismatch", ErrMalformed)
	}
	return i + 1, nil
}

// Hash returns the stored form of a raw key: "sha256:" and the hex digest.
func Hash(raw string) string {
	sum := Sum(raw)
	return HashPrefix + hex.EncodeToString(sum[:])
}

// Sum is the SHA-256 digest of a raw key, the binary form of Hash.
func Sum(raw string) [sha256.Size]byte { return sha256.Sum256([]byte(raw)) }

// ParseHash returns the digest of a stored hash ("sha256:<hex>").
func ParseHash(h string) ([sha256.Size]byte, bool) {
	var sum [sha256.Size]byte
	if !strings.HasPrefix(h, HashPrefix) || hex.DecodedLen(len(h)-len(HashPrefix)) != sha256.Size {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(h[len(HashPrefix):])); err != nil {
		return sum, false
	}
	return sum, true
}

// DisplayPrefix returns the part of a raw key that status and listings
// show: its first DisplayPrefixLength characters, or its class prefix and
// DisplayBodyLength characters of its body when that is longer.
func DisplayPrefix(raw string) string {
	n := DisplayPrefixLength
	if i := strings.LastIndexByte(raw, '_'); i >= 0 && i+1+DisplayBodyLength > n {
		n = i + 1 + DisplayBodyLength
	}
	if len(raw) < n {
		return raw
	}
	return raw[:n]
}

// Quoted reports whether text holds the raw key, or any 16 characters of
// its body, in the clear, in hex or in base64 (standard or URL alphabet, at
// any alignment, as an encoding of a larger blob that contains the key
// holds it; JSON's escaped slashes undone). It finds a key echoed back, whole
// or cut short, by something that saw it, such as an admission webhook
// quoting the Secret it refuses.
func Quoted(text, raw string) bool {
	if raw == "" || text == "" {
		return false
	}
	text = strings.ReplaceAll(text, `\/`, "/")
	lower := strings.ToLower(text)
	const window = 16
	// Every 16-character piece of the key, in the clear and in hex: a
	// quote of any part of the key long enough to narrow a guess.
	for i := 0; i+window <= len(raw); i++ {
		piece := raw[i : i+window]
		if strings.Contains(text, piece) || strings.Contains(lower, hex.EncodeToString([]byte(piece))) {
			return true
		}
	}
	// Base64 at the three alignments: only whole 3-byte groups encode the
	// same way whatever comes before and after them.
	for off := 0; off < 3 && off < len(raw); off++ {
		whole := raw[off : off+(len(raw)-off)/3*3]
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			e := enc.EncodeToString([]byte(whole))
			for i := 0; i+window <= len(e); i += 4 {
				if strings.Contains(text, e[i:i+window]) {
					return true
				}
			}
		}
	}
	return false
}
