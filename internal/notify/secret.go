package notify

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// A class's shared secret is kept in a Secret of the controller's
// namespace, keywarden-notify-<class>, created and rotated by an admin
// (kubectl keywarden shared-secret, or the console) and read by the
// controller, which signs each notification with it. While a rotation's
// overlap lasts, notifications carry a signature with the previous secret
// too, so that receivers can take the new one at their own pace.
const (
	// SecretType is the type of the Secret.
	SecretType corev1.SecretType = "keywarden.dev/shared-secret"
	// SecretField holds the secret, as text: its bytes are the HMAC key.
	SecretField = "secret"
	// PreviousField holds the secret a rotation replaced.
	PreviousField = "previous"
	// AnnotationPreviousUntil is until when (RFC 3339) the previous secret
	// still signs.
	AnnotationPreviousUntil = "keywarden.dev/previous-until"
	// secretPrefix starts every shared secret, so that one found in a log
	// or a repository is recognised.
	secretPrefix = "kwss_"
	// minSecret is the fewest bytes a secret may have: a shorter HMAC key
	// could be guessed.
	minSecret = 32
)

// SecretName is the name of the Secret holding the class's shared secret.
func SecretName(class string) string {
	return keywardenv1alpha1.NotifySecretPrefix + class
}

// NewSecret is a new shared secret: 32 random bytes, in text.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return secretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// ErrNoSecret: the Secret holds no usable shared secret.
var ErrNoSecret = errors.New("no shared secret")

// SigningSecrets are the secrets a notification is signed with at now:
// the current one, and the previous one while its overlap lasts.
func SigningSecrets(s *corev1.Secret, now time.Time) ([][]byte, error) {
	cur := s.Data[SecretField]
	if len(cur) < minSecret {
		return nil, fmt.Errorf("%w: the field %s of Secret %s/%s holds fewer than %d bytes", ErrNoSecret, SecretField, s.Namespace, s.Name, minSecret)
	}
	out := [][]byte{cur}
	if prev := s.Data[PreviousField]; len(prev) >= minSecret {
		if until, err := time.Parse(time.RFC3339, s.Annotations[AnnotationPreviousUntil]); err == nil && now.Before(until) {
			out = append(out, prev)
		}
	}
	return out, nil
}

// Rotate is the Secret for class after a rotation to value at now: value
// signs from now on, and the secret it replaces, if any, signs beside it
// for overlap. old is the Secret as read, nil when there is none.
func Rotate(old *corev1.Secret, namespace, class, value string, overlap time.Duration, now time.Time) *corev1.Secret {
	// Built anew: nothing of the Secret replaced (labels, annotations,
	// owners) but its version, which the write is bound to, carries over.
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: SecretName(class),
			Labels:      map[string]string{"app.kubernetes.io/part-of": "keywarden"},
			Annotations: map[string]string{},
		},
		Type: SecretType,
	}
	var prev []byte
	if old != nil {
		s.ResourceVersion, s.UID = old.ResourceVersion, old.UID
		prev = old.Data[SecretField]
	}
	s.Data = map[string][]byte{SecretField: []byte(value)}
	if len(prev) > 0 && overlap > 0 {
		s.Data[PreviousField] = prev
		s.Annotations[AnnotationPreviousUntil] = now.Add(overlap).UTC().Format(time.RFC3339)
	}
	return s
}
