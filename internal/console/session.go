package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// session is what the console keeps of a signed-in person, sealed in
// their cookie: the token it acts with, who the API server says they are,
// and when the session ends.
type session struct {
	Token   string    `json:"t"`
	User    string    `json:"u"`
	Expires time.Time `json:"e"`
}

// sealer seals sessions into cookie values with AES-GCM under a key that
// lives only in this process: a session does not outlive it, and a cookie
// changed in any bit does not open.
type sealer struct {
	aead cipher.AEAD
	mac  []byte // for the CSRF tokens
}

// cookieAAD binds the sealed value to its use.
var cookieAAD = []byte("keywarden-console-session-v1")

func newSealer() (*sealer, error) {
	key := make([]byte, 32)
	mac := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if _, err := rand.Read(mac); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, mac: mac}, nil
}

func (s *sealer) seal(v session) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, cookieAAD)), nil
}

var errBadSession = errors.New("the session cookie is not valid")

func (s *sealer) open(value string, now time.Time) (session, error) {
	var v session
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < s.aead.NonceSize() {
		return v, errBadSession
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], cookieAAD)
	if err != nil || json.Unmarshal(plain, &v) != nil || v.Token == "" {
		return session{}, errBadSession
	}
	if !now.Before(v.Expires) {
		return session{}, errors.New("the session has ended")
	}
	return v, nil
}

// csrf is the token every form of a session carries: bound to the
// person's bearer token, so that it serves no one else, and unknowable
// without this process's key.
func (s *sealer) csrf(token string) string {
	h := hmac.New(sha256.New, s.mac)
	h.Write([]byte("csrf\x00"))
	h.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func (s *sealer) validCSRF(token, got string) bool {
	return got != "" && hmac.Equal([]byte(s.csrf(token)), []byte(got))
}
