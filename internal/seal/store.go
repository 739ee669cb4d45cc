package seal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretType is the type of the Secret that holds the sealing keys.
const SecretType = "keywarden.dev/sealing-key"

const (
	// reloadAfter is how old the loaded keys may grow before the next seal
	// reads the Secret again, so that a key added to rotate is used soon.
	reloadAfter = 5 * time.Minute
	// unknownKeyReload bounds how often a seal made with a key the store
	// does not know makes it read the Secret again; forged seals cost the
	// API server no more than that.
	unknownKeyReload = 10 * time.Second
)

// Store keeps the keyring of the sealing-key Secret. The first replica that
// needs it creates the Secret with one key from crypto/rand; the others read
// it. A key added to the Secret (any ID greater than the others, such as
// k<unix seconds>, with at least 32 random bytes) seals from the next
// reload on; the others keep verifying. A deleted Secret is created anew
// with a new key: Secrets sealed under the old keys and not yet adopted are
// then replaced with new keys, which is safe.
type Store struct {
	// Client reads and creates the Secret directly, not through a cache
	// (the manager caches only Keywarden's key Secrets, and their metadata).
	Client client.Client
	// Secret is the sealing-key Secret, in the manager's namespace.
	Secret types.NamespacedName
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu       sync.Mutex
	ring     *Keyring
	loadedAt time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Seal seals the key of the given hash and serial for the APIKey of the
// given UID with the current sealing key.
func (s *Store) Seal(ctx context.Context, apiKey types.UID, serial int64, keyHash string) (string, error) {
	kr, err := s.keyring(ctx, reloadAfter)
	if err != nil {
		return "", err
	}
	return kr.Seal(apiKey, serial, keyHash), nil
}

// Verify reports whether seal proves that Keywarden wrote the key of the
// given hash and serial for the APIKey of the given UID. A seal made with a
// key the store does not know yet (added by another replica) makes it read
// the Secret again, at most once every few seconds.
func (s *Store) Verify(ctx context.Context, apiKey types.UID, serial int64, keyHash, seal string) (bool, error) {
	kr, err := s.keyring(ctx, reloadAfter)
	if err != nil {
		return false, err
	}
	if !kr.Knows(seal) {
		if kr, err = s.keyring(ctx, unknownKeyReload); err != nil {
			return false, err
		}
	}
	return kr.Verify(apiKey, serial, keyHash, seal), nil
}

// Ensure loads the keys, creating the Secret when there is none. The
// manager calls it at start, so that a missing permission shows at once.
func (s *Store) Ensure(ctx context.Context) error {
	_, err := s.keyring(ctx, 0)
	return err
}

// keyring returns the loaded keys, read again when older than maxAge.
func (s *Store) keyring(ctx context.Context, maxAge time.Duration) (*Keyring, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring != nil && s.now().Sub(s.loadedAt) < maxAge {
		return s.ring, nil
	}
	kr, err := s.load(ctx)
	if err != nil {
		if s.ring != nil && maxAge > 0 {
			// Keep sealing with the keys already loaded; the next seal
			// tries again.
			return s.ring, nil
		}
		return nil, err
	}
	s.ring, s.loadedAt = kr, s.now()
	return kr, nil
}

func (s *Store) load(ctx context.Context) (*Keyring, error) {
	for range 3 {
		sec := &corev1.Secret{}
		err := s.Client.Get(ctx, s.Secret, sec)
		if err == nil {
			return fromSecret(sec)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the sealing-key Secret %s: %w", s.Secret, err)
		}
		key := make([]byte, MinKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: s.Secret.Namespace, Name: s.Secret.Name,
				Labels: map[string]string{"app.kubernetes.io/name": "keywarden", "app.kubernetes.io/component": "sealing-key"},
			},
			Type: SecretType,
			Data: map[string][]byte{"k" + strconv.FormatInt(s.now().Unix(), 10): key},
		}
		err = s.Client.Create(ctx, sec)
		if err == nil {
			return fromSecret(sec)
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the sealing-key Secret %s: %w", s.Secret, err)
		}
		// Another replica created it first: read that one.
	}
	return nil, fmt.Errorf("the sealing-key Secret %s keeps appearing and disappearing", s.Secret)
}

// fromSecret builds the keyring of the Secret's usable entries; entries
// too short or with IDs a seal cannot carry are left out.
func fromSecret(sec *corev1.Secret) (*Keyring, error) {
	usable := make(map[string][]byte, len(sec.Data))
	for id, k := range sec.Data {
		if validID(id) && len(k) >= MinKeyBytes {
			usable[id] = k
		}
	}
	kr, err := NewKeyring(usable)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("the sealing-key Secret %s/%s holds no usable key: each entry must have an ID of [a-zA-Z0-9_-] and at least %d random bytes", sec.Namespace, sec.Name, MinKeyBytes), err)
	}
	return kr, nil
}
