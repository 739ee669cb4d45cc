package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/seal"
)

// conflictRecheck is how often a key stalled on a foreign Secret looks
// again: foreign Secrets are not watched, so their removal sends no event.
const conflictRecheck = time.Minute

// secretName is the name of the Secret that holds the key: the one recorded
// in status once issued, otherwise spec.secretName or the APIKey's name.
func secretName(key *keywardenv1alpha1.APIKey) string {
	if ref := key.Status.SecretRef; ref != nil && ref.Name != "" {
		return ref.Name
	}
	if key.Spec.SecretName != "" {
		return key.Spec.SecretName
	}
	return key.Name
}

// ownedBy reports whether the APIKey is the Secret's controller.
func ownedBy(secret metav1.Object, key *keywardenv1alpha1.APIKey) bool {
	ref := metav1.GetControllerOfNoCopy(secret)
	return ref != nil && ref.UID == key.UID && ref.Kind == keywardenv1alpha1.APIKeyKind
}

// getSecretMeta returns the Secret's metadata, or nil when there is none.
// It reads the cache first and, on a miss, the API server, so that a Secret
// the cache has not seen yet is never taken for a missing one.
func (r *APIKeyReconciler) getSecretMeta(ctx context.Context, key *keywardenv1alpha1.APIKey) (*metav1.PartialObjectMetadata, error) {
	return r.secretMeta(ctx, key, r.Client, r.APIReader)
}

// secretMeta reads the Secret's metadata from each reader in turn until one
// has it; nil when none does.
func (r *APIKeyReconciler) secretMeta(ctx context.Context, key *keywardenv1alpha1.APIKey, readers ...client.Reader) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	nn := types.NamespacedName{Namespace: key.Namespace, Name: secretName(key)}
	var err error
	for _, rd := range readers {
		if err = rd.Get(ctx, nn, m); !apierrors.IsNotFound(err) {
			break
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", nn.Name, err)
	}
	return m, nil
}

// secretKey is what the controller reads of a key's Secret: the hash and
// display prefix of the key it holds (empty when it holds no well-formed
// key), its seal, and whether it is being deleted.
type secretKey struct {
	hash, prefix, seal string
	deleting           bool
}

// readKey reads the key's Secret through the API server (Secret data is
// never cached). The Secret must still be the one of the given UID.
func (r *APIKeyReconciler) readKey(ctx context.Context, key *keywardenv1alpha1.APIKey, uid types.UID) (secretKey, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: secretName(key)}, s); err != nil {
		return secretKey{}, fmt.Errorf("reading Secret %s: %w", secretName(key), err)
	}
	if s.UID != uid {
		return secretKey{}, fmt.Errorf("secret %s was replaced while it was read", s.Name)
	}
	sk := secretKey{seal: s.Annotations[seal.Annotation], deleting: !s.DeletionTimestamp.IsZero()}
	raw := string(s.Data[keywardenv1alpha1.SecretKeyField])
	if _, err := keys.Parse(raw); err == nil {
		sk.hash, sk.prefix = keys.Hash(raw), keys.DisplayPrefix(raw)
	}
	return sk, nil
}

// deleteSecret deletes the key's Secret if this APIKey owns it; a foreign
// Secret of the same name is left alone. It looks the Secret up like
// getSecretMeta, so that one the cache has not seen yet is deleted too.
func (r *APIKeyReconciler) deleteSecret(ctx context.Context, key *keywardenv1alpha1.APIKey) error {
	return r.deleteSecretFrom(ctx, key, r.Client, r.APIReader)
}

// deleteCachedSecret is deleteSecret for a Secret the cache shows; it never
// reads the API server.
func (r *APIKeyReconciler) deleteCachedSecret(ctx context.Context, key *keywardenv1alpha1.APIKey) error {
	return r.deleteSecretFrom(ctx, key, r.Client)
}

func (r *APIKeyReconciler) deleteSecretFrom(ctx context.Context, key *keywardenv1alpha1.APIKey, readers ...client.Reader) error {
	m, err := r.secretMeta(ctx, key, readers...)
	if err != nil || m == nil || !ownedBy(m, key) {
		return err
	}
	return r.deleteSecretUID(ctx, m)
}

func (r *APIKeyReconciler) deleteSecretUID(ctx context.Context, m *metav1.PartialObjectMetadata) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name}}
	err := r.Delete(ctx, s, client.Preconditions{UID: &m.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting Secret %s: %s", m.Name, withheld(err))
	}
	return nil
}

// withheld is an error of the API server on a Secret whose key this pass
// does not know (so cannot look for): only its code and reason, since an
// admission webhook or policy that refuses the deletion may quote the
// Secret's data in its message.
func withheld(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return err.Error() // not from the API server: it never saw the key
	}
	return fmt.Sprintf("the API server answered %d %s (its message is withheld: it may quote the Secret)",
		status.Status().Code, status.Status().Reason)
}

// reconcileSecret issues the key when it has none, and keeps an issued key
// whole: its Secret must exist, belong to this APIKey and hold the key whose
// hash is in status. It sets Active, Pending with Reconciling (issuing or
// reissuing), or Stalled with SecretConflict.
func (r *APIKeyReconciler) reconcileSecret(ctx context.Context, p *pass) (bool, error) {
	st := &p.key.Status
	if st.KeyHash == "" {
		// Only the cache is read before a key is issued: a Secret it
		// has not seen yet makes the create fail, and issue looks at the
		// API server then.
		m, err := r.secretMeta(ctx, p.key, r.Client)
		if err != nil {
			return true, err
		}
		return true, r.issueInto(ctx, p, m)
	}
	m, err := r.getSecretMeta(ctx, p.key)
	if err != nil {
		return true, err
	}
	if m != nil && !ownedBy(m, p.key) {
		r.stallOnConflict(p, m)
		return true, nil
	}

	switch {
	case m == nil:
		r.startReissue(p, fmt.Sprintf("Secret %s was deleted; the old key is invalid and a new one is being issued", secretName(p.key)))
		return true, nil
	case st.SecretRef == nil || st.SecretRef.UID != string(m.UID):
		// Another Secret object than the one recorded: the same key
		// restored, or a different value.
		// Its value is proven by the recorded hash, not by a seal: the
		// same key restored (from a backup, say) is the issued key.
		sk, err := r.readKey(ctx, p.key, m.UID)
		if err != nil {
			return true, err
		}
		if sk.hash != st.KeyHash {
			if err := r.deleteSecretUID(ctx, m); err != nil {
				return true, err
			}
			p.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventSecretTampered, "Reissue",
				fmt.Sprintf("Secret %s was replaced by one that does not hold the issued key; it was deleted, the old key is invalid and a new one is issued", m.Name))
			r.startReissue(p, fmt.Sprintf("Secret %s no longer holds the issued key; the old key is invalid and a new one is being issued", m.Name))
			return true, nil
		}
		st.SecretRef = &keywardenv1alpha1.SecretReference{Name: m.Name, UID: string(m.UID)}
	}
	p.outcome = lifecycle.Outcome{Phase: keywardenv1alpha1.PhaseActive}
	return true, nil
}

// stallOnConflict reports a Secret of the target name that this APIKey does
// not own. The Secret is never touched; an issued key whose Secret it
// replaced is no longer valid.
func (r *APIKeyReconciler) stallOnConflict(p *pass, m *metav1.PartialObjectMetadata) {
	st := &p.key.Status
	if st.KeyHash != "" {
		st.KeySerial++ // the issued key is gone for good
	}
	st.KeyHash, st.KeyPrefix, st.SecretRef = "", "", nil
	msg := fmt.Sprintf("Secret %s exists and is not owned by this APIKey; it is left untouched. Delete or rename it, or create the APIKey with another spec.secretName", m.Name)
	if !hasCondition(p.key, keywardenv1alpha1.ConditionStalled, keywardenv1alpha1.ReasonSecretConflict) {
		p.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventSecretConflict, "Issue", msg)
	}
	p.outcome = lifecycle.Outcome{
		Phase:   keywardenv1alpha1.PhasePending,
		Stalled: true,
		Reason:  keywardenv1alpha1.ReasonSecretConflict,
		Message: msg,
	}
	p.requeue(conflictRecheck)
}

// hasCondition reports whether the key's condition of the given type is True
// with the given reason.
func hasCondition(key *keywardenv1alpha1.APIKey, typ, reason string) bool {
	c := apimeta.FindStatusCondition(key.Status.Conditions, typ)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
}

// startReissue forgets the lost key and persists that before a new one is
// issued, so that a crash between writing the new Secret and recording its
// hash leads to adoption of that Secret, never to a second new key.
func (r *APIKeyReconciler) startReissue(p *pass, msg string) {
	st := &p.key.Status
	st.KeySerial++ // a Secret of the old key is never adopted again
	st.KeyHash, st.KeyPrefix, st.SecretRef = "", "", nil
	p.outcome = lifecycle.Outcome{
		Phase:       keywardenv1alpha1.PhasePending,
		Progressing: true,
		Reason:      keywardenv1alpha1.ReasonReissuing,
		Message:     msg,
	}
	p.requeue(time.Millisecond)
}

// issueInto issues the key into the Secret of the given metadata (nil when
// there is none yet), or reports the conflict when the Secret is not this
// APIKey's.
func (r *APIKeyReconciler) issueInto(ctx context.Context, p *pass, m *metav1.PartialObjectMetadata) error {
	if m != nil && !ownedBy(m, p.key) {
		r.stallOnConflict(p, m)
		return nil
	}
	return r.issue(ctx, p, m)
}

// issue records the key of a Secret this APIKey already owns when Keywarden
// sealed it for this APIKey (a pass wrote the Secret and stopped before
// recording the hash), or generates a new key and writes it into a new,
// immutable, sealed Secret. An owned Secret without a valid seal holds a
// value someone else chose: it is deleted and never recorded.
func (r *APIKeyReconciler) issue(ctx context.Context, p *pass, m *metav1.PartialObjectMetadata) error {
	st := &p.key.Status
	reissue := hasCondition(p.key, keywardenv1alpha1.ConditionReconciling, keywardenv1alpha1.ReasonReissuing)
	p.outcome = lifecycle.Outcome{
		Phase: keywardenv1alpha1.PhasePending, Progressing: true,
		Reason: keywardenv1alpha1.ReasonIssuing, Message: "The key is being issued",
	}
	if reissue {
		p.outcome.Reason = keywardenv1alpha1.ReasonReissuing
	}

	var sk secretKey
	var uid types.UID
	if m != nil {
		var adopted bool
		var err error
		switch sk, adopted, err = r.adopt(ctx, p, m); {
		case err != nil:
			return err
		case adopted:
			uid = m.UID
		case !p.replacedTampered:
			return nil // waiting for the cache
		}
	}
	if uid == "" {
		raw, err := keys.Generate(p.policy.KeyPrefix)
		if err != nil {
			return err
		}
		sk = secretKey{hash: keys.Hash(raw), prefix: keys.DisplayPrefix(raw)}
		if sk.seal, err = r.Seals.Seal(ctx, p.key.UID, st.KeySerial, sk.hash); err != nil {
			return fmt.Errorf("sealing the Secret: %w", err)
		}
		secret := r.newSecret(p.key, raw, sk.seal)
		if err := r.Create(ctx, secret); err != nil {
			if apierrors.IsAlreadyExists(err) && !p.replacedTampered {
				// A Secret the cache has not seen, or never sees (one
				// that Keywarden does not manage): adopt it or report
				// the conflict, as the API server shows it.
				m, err := r.secretMeta(ctx, p.key, r.APIReader)
				if err != nil || m == nil {
					p.requeue(time.Millisecond)
					return err
				}
				return r.issueInto(ctx, p, m)
			}
			if apierrors.IsAlreadyExists(err) {
				// The Secret this pass deleted is still going.
				p.requeue(time.Second)
				return nil
			}
			msg := apiErrorAbout(err, raw)
			if apierrors.IsInvalid(err) {
				// Retrying cannot help: only a change of the spec can.
				p.outcome = lifecycle.Outcome{
					Phase: keywardenv1alpha1.PhasePending, Stalled: true,
					Reason:  keywardenv1alpha1.ReasonSecretInvalid,
					Message: fmt.Sprintf("The API server refuses Secret %s: %s", secret.Name, msg),
				}
				return nil
			}
			return fmt.Errorf("creating Secret %s: %s", secret.Name, msg)
		}
		uid = secret.UID
	}

	st.KeyHash, st.KeyPrefix = sk.hash, sk.prefix
	st.SecretRef = &keywardenv1alpha1.SecretReference{Name: secretName(p.key), UID: string(uid)}
	// The grant of a new key is what reconcilePolicy admitted; a reissued
	// key keeps its issuance time and its grant, as reconcileGrant decided.
	if st.IssuedAt == nil {
		st.IssuedAt = p.stamp()
		p.policy.Issue(&p.key.Spec, st.IssuedAt.Time).Record(st)
		setCompliance(p.key, nil) // reconcilePolicy admitted it under its class
	}
	if st.ExpiresAt != nil {
		p.requeue(st.ExpiresAt.Sub(p.now) + 10*time.Millisecond)
	}
	p.outcome = lifecycle.Outcome{Phase: keywardenv1alpha1.PhaseActive}
	if reissue {
		p.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyReissued, "Issue",
			fmt.Sprintf("A new key %s... was issued into Secret %s", sk.prefix, st.SecretRef.Name))
	} else {
		p.emit(corev1.EventTypeNormal, keywardenv1alpha1.EventKeyIssued, "Issue",
			fmt.Sprintf("Key %s... was issued into Secret %s", sk.prefix, st.SecretRef.Name))
	}
	return nil
}

// adopt reads an owned Secret found where the key is to be issued. It
// returns adopted when Keywarden sealed the Secret's key for this APIKey.
// Otherwise the Secret's value was chosen by someone else (its labels,
// owner reference, type and format prove nothing): it is deleted, with a
// SecretTampered event, and the caller generates a new key.
func (r *APIKeyReconciler) adopt(ctx context.Context, p *pass, m *metav1.PartialObjectMetadata) (secretKey, bool, error) {
	sk, err := r.readKey(ctx, p.key, m.UID)
	if apierrors.IsNotFound(err) {
		// The cache still shows a Secret that is gone: look again
		// once it has caught up.
		p.requeue(100 * time.Millisecond)
		return sk, false, nil
	}
	if err != nil {
		return sk, false, err
	}
	if sk.deleting {
		// Going (perhaps held by a finalizer): neither adopted nor
		// replaced until it is gone.
		p.requeue(5 * time.Second)
		return sk, false, nil
	}
	if sk.hash != "" {
		proven, err := r.Seals.Verify(ctx, p.key.UID, p.key.Status.KeySerial, sk.hash, sk.seal)
		if err != nil {
			return sk, false, fmt.Errorf("checking the seal of Secret %s: %w", m.Name, err)
		}
		if proven {
			return sk, true, nil
		}
	}
	if err := r.deleteSecretUID(ctx, m); err != nil {
		return sk, false, err
	}
	p.emit(corev1.EventTypeWarning, keywardenv1alpha1.EventSecretTampered, "Issue",
		fmt.Sprintf("Secret %s holds a value that Keywarden did not seal for this APIKey; it was deleted and a new key is issued", m.Name))
	p.replacedTampered = true
	return secretKey{}, false, nil
}

// newSecret builds the immutable Secret that holds a new raw key, with its
// seal.
func (r *APIKeyReconciler) newSecret(key *keywardenv1alpha1.APIKey, raw, sealed string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace,
			Name:      secretName(key),
		},
		Type:      keywardenv1alpha1.SecretType,
		Immutable: ptr.To(true),
		Data:      map[string][]byte{keywardenv1alpha1.SecretKeyField: []byte(raw)},
	}
	s.Annotations = make(map[string]string, 1+len(key.Spec.SecretTemplate.GetAnnotations()))
	for k, v := range key.Spec.SecretTemplate.GetAnnotations() {
		s.Annotations[k] = v
	}
	s.Annotations[seal.Annotation] = sealed
	s.Labels = make(map[string]string, 3+len(key.Spec.SecretTemplate.GetLabels()))
	for k, v := range key.Spec.SecretTemplate.GetLabels() {
		s.Labels[k] = string(v)
	}
	s.Labels[keywardenv1alpha1.LabelManagedBy] = keywardenv1alpha1.ManagedByValue
	s.Labels[keywardenv1alpha1.LabelAPIKey] = key.Name
	s.Labels[keywardenv1alpha1.LabelAPIKeyUID] = string(key.UID)
	// The scheme knows APIKey, so this cannot fail for a valid object.
	_ = controllerutil.SetControllerReference(key, s, r.Scheme())
	return s
}

// apiErrorAbout is the message of an error of the API server on writing a
// Secret that holds raw. It is kept only when it quotes no part of the key
// in any encoding (an admission webhook or policy may echo the Secret it
// refuses): the message leaves the reconciler as a condition, an event or a
// log line, where no key material may go.
func apiErrorAbout(err error, raw string) string {
	msg := err.Error()
	if !keys.Quoted(msg, raw) {
		return msg
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return fmt.Sprintf("the API server answered %d %s, with a message that quotes the key and is withheld",
			status.Status().Code, status.Status().Reason)
	}
	return "an error whose message quotes the key and is withheld"
}

// reconcileDelete deletes the key's Secret, then lets the APIKey go.
func (r *APIKeyReconciler) reconcileDelete(ctx context.Context, key *keywardenv1alpha1.APIKey) error {
	if !controllerutil.ContainsFinalizer(key, keywardenv1alpha1.Finalizer) {
		return nil
	}
	if err := r.deleteSecret(ctx, key); err != nil {
		return err
	}
	base := key.DeepCopy()
	controllerutil.RemoveFinalizer(key, keywardenv1alpha1.Finalizer)
	if err := r.Patch(ctx, key, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("removing finalizer: %w", err))
	}
	return nil
}
