// Package seal proves that Keywarden wrote a key's Secret. Everything else
// on a Secret (labels, owner references, type, immutability, the key's
// format) can be written by anyone allowed to create Secrets in the
// namespace; a seal cannot. A seal is an HMAC-SHA256, under a sealing key
// that only the manager reads, of the APIKey's UID, the serial of the key
// for that APIKey (status.keySerial, which grows each time a key is
// replaced) and the hash of the key the Secret holds. The controller seals
// every Secret it writes and adopts a Secret left by an interrupted pass
// only when its seal verifies, so a value that Keywarden did not generate
// for that very APIKey, or a key of it that was replaced since, is never
// recorded.
//
// Sealing keys live in one Secret of the manager's namespace (see Store).
// The newest key seals; every key in the Secret verifies, so that adding a
// key rotates without breaking Secrets sealed a moment before.
package seal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Annotation holds a Secret's seal.
const Annotation = "keywarden.dev/seal"

// MinKeyBytes is the shortest sealing key accepted.
const MinKeyBytes = 32

// version starts every seal and the HMAC's input, so that a later format
// can be told apart.
const version = "v1"

// Keyring holds sealing keys by ID. The zero value seals nothing and
// verifies nothing.
type Keyring struct {
	keys    map[string][]byte
	current string
}

// NewKeyring returns a keyring of the given keys by ID; the greatest ID
// seals. Keys shorter than MinKeyBytes, and IDs that are not
// [a-zA-Z0-9-_] (the seal's separator is '.'), are refused.
func NewKeyring(keys map[string][]byte) (*Keyring, error) {
	kr := &Keyring{keys: make(map[string][]byte, len(keys))}
	for id, k := range keys {
		if !validID(id) {
			return nil, fmt.Errorf("sealing key ID %q: want 1-63 characters of [a-zA-Z0-9_-]", id)
		}
		if len(k) < MinKeyBytes {
			return nil, fmt.Errorf("sealing key %s: %d bytes, want at least %d", id, len(k), MinKeyBytes)
		}
		kr.keys[id] = slices.Clone(k)
		if id > kr.current {
			kr.current = id
		}
	}
	if len(kr.keys) == 0 {
		return nil, errors.New("no sealing key")
	}
	return kr, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 63 {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// Current is the ID of the key that seals.
func (kr *Keyring) Current() string { return kr.current }

// Seal returns the seal of a Secret that holds the key of the given hash
// (keys.Hash) and serial for the APIKey of the given UID.
func (kr *Keyring) Seal(apiKey types.UID, serial int64, keyHash string) string {
	return version + "." + kr.current + "." + base64.RawURLEncoding.EncodeToString(mac(kr.keys[kr.current], apiKey, serial, keyHash))
}

// Verify reports whether seal is a seal, under one of the keyring's keys,
// of the key of the given hash and serial for the APIKey of the given UID.
func (kr *Keyring) Verify(apiKey types.UID, serial int64, keyHash, seal string) bool {
	if kr == nil {
		return false
	}
	v, rest, ok := strings.Cut(seal, ".")
	if !ok || v != version {
		return false
	}
	id, sum, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	k, ok := kr.keys[id]
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sum)
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(k, apiKey, serial, keyHash))
}

// Knows reports whether the keyring has the key that made the seal, so
// that a caller can tell a seal from an unknown (perhaps newer) key.
func (kr *Keyring) Knows(seal string) bool {
	if kr == nil {
		return false
	}
	parts := strings.SplitN(seal, ".", 3)
	if len(parts) != 3 || parts[0] != version {
		return false
	}
	_, ok := kr.keys[parts[1]]
	return ok
}

func mac(key []byte, apiKey types.UID, serial int64, keyHash string) []byte {
	h := hmac.New(sha256.New, key)
	// NUL cannot occur in a UID, a number or a hash, so the fields cannot
	// run into each other.
	h.Write([]byte("keywarden.dev/seal/" + version + "\x00"))
	h.Write([]byte(apiKey))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(serial, 10)))
	h.Write([]byte{0})
	h.Write([]byte(keyHash))
	return h.Sum(nil)
}
