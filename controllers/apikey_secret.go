package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/seal"
)

// ownedBy reports whether the APIKey is the Secret's controller.
func ownedBy(secret metav1.Object, key *keywardenv1alpha1.APIKey) bool {
	ref := metav1.GetControllerOfNoCopy(secret)
	return ref != nil && ref.UID == key.UID && ref.Kind == keywardenv1alpha1.APIKeyKind
}

// secretMeta reads the Secret's metadata from each reader in turn until one
// has it; nil when none does.
func (r *APIKeyReconciler) secretMeta(ctx context.Context, key *keywardenv1alpha1.APIKey, readers ...client.Reader) (m *metav1.PartialObjectMetadata, cached bool, err error) {
	m = &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	nn := types.NamespacedName{Namespace: key.Namespace, Name: key.SecretName()}
	for i, rd := range readers {
		if err = rd.Get(ctx, nn, m); !apierrors.IsNotFound(err) {
			cached = i == 0
			break
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading Secret %s: %w", nn.Name, err)
	}
	return m, cached, nil
}

// secretLabels are the labels of a key's Secret that the controller sets
// and puts back.
func secretLabels(key *keywardenv1alpha1.APIKey) map[string]string {
	return map[string]string{
		keywardenv1alpha1.LabelManagedBy: keywardenv1alpha1.ManagedByValue,
		keywardenv1alpha1.LabelAPIKey:    key.Name,
		keywardenv1alpha1.LabelAPIKeyUID: string(key.UID),
	}
}

// labelled reports whether a Secret carries the labels the controller
// sets.
func labelled(m metav1.Object, key *keywardenv1alpha1.APIKey) bool {
	for k, v := range secretLabels(key) {
		if m.GetLabels()[k] != v {
			return false
		}
	}
	return true
}

// adopt makes the key the controller of a Secret that holds its key and
// that nothing controls (a restore drops owner references), with its
// labels and a seal of its own, unless the Secret changed since it was
// read.
func (r *APIKeyReconciler) adopt(ctx context.Context, key *keywardenv1alpha1.APIKey, s *lifecycle.Secret, serial int64, hash string) error {
	sealed, err := r.Seals.Seal(ctx, key.UID, serial, hash)
	if err != nil {
		return fmt.Errorf("sealing Secret %s: %w", s.Name, err)
	}
	ref := metav1.NewControllerRef(key, keywardenv1alpha1.GroupVersion.WithKind(keywardenv1alpha1.APIKeyKind))
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": s.UID, "resourceVersion": s.ResourceVersion,
		"labels":          secretLabels(key),
		"annotations":     map[string]string{seal.Annotation: sealed},
		"ownerReferences": []metav1.OwnerReference{*ref},
	}})
	if err != nil {
		return err
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	m.SetNamespace(key.Namespace)
	m.SetName(s.Name)
	if err := r.Patch(ctx, m, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("adopting Secret %s: %s", s.Name, withheld(err))
	}
	return nil
}

// relabel puts back the labels of the key's Secret, unless the Secret
// changed since it was read.
func (r *APIKeyReconciler) relabel(ctx context.Context, key *keywardenv1alpha1.APIKey, s *lifecycle.Secret) error {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	m.SetNamespace(key.Namespace)
	m.SetName(s.Name)
	m.SetUID(s.UID)
	m.SetResourceVersion(s.ResourceVersion)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels": secretLabels(key), "uid": s.UID, "resourceVersion": s.ResourceVersion,
	}})
	if err != nil {
		return err
	}
	if err := r.Patch(ctx, m, client.RawPatch(types.MergePatchType, patch)); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("putting back the labels of Secret %s: %s", s.Name, withheld(err))
	}
	return nil
}

// secretKey is what the controller reads of a key's Secret: the hash and
// display prefix of the key it holds (empty when it holds no well-formed
// key), its seal, and whether it is being deleted.
type secretKey struct {
	hash, prefix, seal string
	deleting           bool
	// restored: of the key type, labelled by Keywarden for an APIKey of
	// this name (as a restore brings it back).
	restored bool
}

// readKey reads the key's Secret through the API server (Secret data is
// never cached). The Secret must still be the one of the given UID.
func (r *APIKeyReconciler) readKey(ctx context.Context, key *keywardenv1alpha1.APIKey, uid types.UID) (secretKey, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: key.SecretName()}, s); err != nil {
		return secretKey{}, fmt.Errorf("reading Secret %s: %w", key.SecretName(), err)
	}
	if s.UID != uid {
		return secretKey{}, fmt.Errorf("secret %s was replaced while it was read", s.Name)
	}
	sk := secretKey{seal: s.Annotations[seal.Annotation], deleting: !s.DeletionTimestamp.IsZero(),
		restored: s.Type == keywardenv1alpha1.SecretType && s.Labels[keywardenv1alpha1.LabelManagedBy] == keywardenv1alpha1.ManagedByValue &&
			s.Labels[keywardenv1alpha1.LabelAPIKey] == key.Name}
	raw := string(s.Data[keywardenv1alpha1.SecretKeyField])
	if _, err := keys.Parse(raw); err == nil {
		sk.hash, sk.prefix = keys.Hash(raw), keys.DisplayPrefix(raw)
	}
	return sk, nil
}

// deleteSecretUID deletes the Secret of that name if it is still the
// object of that UID.
func (r *APIKeyReconciler) deleteSecretUID(ctx context.Context, namespace, name string, uid types.UID) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	err := r.Delete(ctx, s, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting Secret %s: %s", name, withheld(err))
	}
	return nil
}

// stillCurrent reads the APIKey again from the API server and fails unless
// it is the object the pass decided from. A Secret is replaced only then:
// a manager that led a moment ago (paused, then woken before it learns it
// lost its lease) decides from a cache that may miss a rotation another
// leader made meanwhile, and would take the rotated key in the Secret for
// a tampered one.
func (r *APIKeyReconciler) stillCurrent(ctx context.Context, k *keywardenv1alpha1.APIKey) error {
	now := &metav1.PartialObjectMetadata{}
	now.SetGroupVersionKind(keywardenv1alpha1.GroupVersion.WithKind(keywardenv1alpha1.APIKeyKind))
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(k), now); err != nil {
		return fmt.Errorf("reading the APIKey again before replacing its Secret: %w", err)
	}
	if now.UID != k.UID || now.ResourceVersion != k.ResourceVersion {
		return errors.New("the APIKey changed since this pass read it; the pass is retried before its Secret is replaced")
	}
	return nil
}

// act does what the decision asks of the key's Secret, and reports whether
// it learnt something the decision depends on (added to o).
func (r *APIKeyReconciler) act(ctx context.Context, o *lifecycle.Observed, d *lifecycle.Decision) (more bool, err error) {
	k, s := o.Key, o.Secret
	switch d.Secret {
	case lifecycle.SecretDelete:
		return false, r.deleteSecretUID(ctx, k.Namespace, s.Name, s.UID)
	case lifecycle.SecretReplace:
		if err := r.stillCurrent(ctx, k); err != nil {
			return false, err
		}
		if err := r.deleteSecretUID(ctx, k.Namespace, s.Name, s.UID); err != nil {
			return false, err
		}
		o.RestoreReplaced = o.RestoreReplaced || !s.Owned && s.Restored
		o.Secret, o.TamperedDeleted = nil, true
		return true, nil
	case lifecycle.SecretIssue:
		return true, r.issue(ctx, o, d.Status.KeySerial)
	case lifecycle.SecretRotate:
		if err := r.prepareRotation(ctx, o, d); err != nil {
			// Nothing was generated: the request is not handled.
			d.Status.Rotation = o.Key.Status.Rotation.DeepCopy()
			return false, err
		}
		return false, nil
	case lifecycle.SecretWriteNext:
		return true, r.writeNext(ctx, o, d)
	case lifecycle.SecretRelabel:
		return false, r.relabel(ctx, k, s)
	case lifecycle.SecretAdopt:
		return false, r.adopt(ctx, k, s, d.Status.KeySerial, d.Status.KeyHash)
	}
	return false, nil
}

// prepareRotation generates the next key of a rotation, records it in the
// decided status and holds its value until a later pass, which reads that
// status back, writes it into the Secret.
func (r *APIKeyReconciler) prepareRotation(ctx context.Context, o *lifecycle.Observed, d *lifecycle.Decision) error {
	k, prefix := o.Key, o.Policy.KeyPrefix
	if o.Violation != nil || prefix == "" {
		prefix = keyPrefixOf(d.Status.KeyPrefix)
	}
	raw, err := keys.Generate(prefix)
	if err != nil {
		return err
	}
	hash := keys.Hash(raw)
	sealed, err := r.Seals.Seal(ctx, k.UID, d.Status.KeySerial, hash)
	if err != nil {
		return fmt.Errorf("sealing the Secret: %w", err)
	}
	d.Status.Rotation.Next = &keywardenv1alpha1.RecordedKey{KeyHash: hash, KeyPrefix: keys.DisplayPrefix(raw)}
	r.next.hold(client.ObjectKeyFromObject(k), k.UID, hash, raw, sealed)
	return nil
}

// keyPrefixOf is the class prefix of a key's display prefix: a key
// rotated while its class does not resolve keeps the prefix it has.
func keyPrefixOf(display string) string {
	if i := strings.IndexByte(display, '_'); i > 0 {
		return display[:i+1]
	}
	return keys.DefaultPrefix
}

// writeNext writes a rotation's held next key into the key's Secret, in
// place: the Secret keeps its name and its object, so that a mounted
// volume sees the new key without a restart and Reloader sees an update.
// What was written is added to o, for the pass to complete the rotation.
//
// The APIKey is read again first: only the next key status records now is
// written (another manager that was leader a moment ago may have recorded
// another). A Secret that cannot be updated in place (immutable, as earlier
// releases wrote them, or no longer labelled and typed as a key's, which
// the admission policy requires of an update) is replaced: deleted and
// created again, with a Warning that running pods mounting it keep the
// previous key until they restart.
func (r *APIKeyReconciler) writeNext(ctx context.Context, o *lifecycle.Observed, d *lifecycle.Decision) error {
	k := o.Key
	next := d.Status.Rotation.Next
	held, ok := r.next.get(client.ObjectKeyFromObject(k), k.UID, next.KeyHash)
	if !ok {
		return errors.New("the next key's value is no longer held; retrying")
	}
	now := &keywardenv1alpha1.APIKey{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(k), now); err != nil {
		return fmt.Errorf("reading the APIKey again: %w", err)
	}
	if rot := now.Status.Rotation; now.UID != k.UID || rot == nil || rot.Next == nil || rot.Next.KeyHash != next.KeyHash {
		return errors.New("the APIKey no longer records this next key; retrying")
	}
	if lifecycle.Revoked(now) {
		return errors.New("the APIKey was revoked meanwhile; retrying")
	}
	name := k.SecretName()
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: k.Namespace, Name: name}, s); err != nil {
		return fmt.Errorf("reading Secret %s: %s", name, withheld(err))
	}
	if !ownedBy(s, k) {
		return fmt.Errorf("secret %s is not this APIKey's; the rotation waits", name)
	}
	old := string(s.Data[keywardenv1alpha1.SecretKeyField])
	var err error
	if inShape(s) {
		s.Data = map[string][]byte{keywardenv1alpha1.SecretKeyField: []byte(held.raw)}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[seal.Annotation] = held.sealed
		err = r.Update(ctx, s)
	} else {
		if err := r.deleteSecretUID(ctx, s.Namespace, s.Name, s.UID); err != nil {
			return err
		}
		o.SecretReplaced = true
		s = r.newSecret(k, held.raw, held.sealed)
		err = r.Create(ctx, s)
	}
	if err != nil {
		return fmt.Errorf("writing the next key into Secret %s: %s", name, apiErrorAbout(err, held.raw, old))
	}
	o.Secret = &lifecycle.Secret{Name: s.Name, UID: s.UID, ResourceVersion: s.ResourceVersion, Owned: true, Read: true,
		Hash: next.KeyHash, Prefix: next.KeyPrefix}
	return nil
}

// inShape reports whether the Secret can take a new key in place: mutable,
// of Keywarden's type and labelled as Keywarden's (the admission policy
// lets the manager update only such Secrets).
func inShape(s *corev1.Secret) bool {
	return (s.Immutable == nil || !*s.Immutable) && s.Type == keywardenv1alpha1.SecretType &&
		s.Labels[keywardenv1alpha1.LabelManagedBy] == keywardenv1alpha1.ManagedByValue
}

// issue generates a new key and writes it into a new, immutable, sealed
// Secret, and adds to o what the create found: the Secret it created, the
// one it ran into (read again from the API server), or the API server's
// refusal.
func (r *APIKeyReconciler) issue(ctx context.Context, o *lifecycle.Observed, serial int64) error {
	k := o.Key
	raw, err := keys.Generate(o.Policy.KeyPrefix)
	if err != nil {
		return err
	}
	hash, prefix := keys.Hash(raw), keys.DisplayPrefix(raw)
	sealed, err := r.Seals.Seal(ctx, k.UID, serial, hash)
	if err != nil {
		return fmt.Errorf("sealing the Secret: %w", err)
	}
	secret := r.newSecret(k, raw, sealed)
	err = r.Create(ctx, secret)
	switch {
	case err == nil:
		o.Created = &lifecycle.Created{Hash: hash, Prefix: prefix, UID: secret.UID, ResourceVersion: secret.ResourceVersion}
		return nil
	case apierrors.IsAlreadyExists(err):
		o.CreateRaced = true
		if o.TamperedDeleted {
			return nil // the Secret this pass deleted is still going
		}
		// A Secret the cache has not seen, or never sees (one that
		// Keywarden does not manage): adopt it or report the conflict,
		// as the API server shows it.
		m, _, err := r.secretMeta(ctx, k, r.APIReader)
		if err != nil {
			return err
		}
		o.Secret, err = r.observeSecret(ctx, k, m, false, true)
		return err
	case apierrors.IsInvalid(err):
		o.CreateRefused = fmt.Sprintf("The API server refuses Secret %s: %s", secret.Name, apiErrorAbout(err, raw))
		return nil
	}
	return fmt.Errorf("creating Secret %s: %s", secret.Name, apiErrorAbout(err, raw))
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

// newSecret builds the Secret that holds a new raw key, with its seal. It
// is mutable: a rotation writes the next key into it in place.
func (r *APIKeyReconciler) newSecret(key *keywardenv1alpha1.APIKey, raw, sealed string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace,
			Name:      key.SecretName(),
		},
		Type: keywardenv1alpha1.SecretType,
		Data: map[string][]byte{keywardenv1alpha1.SecretKeyField: []byte(raw)},
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
	maps.Copy(s.Labels, secretLabels(key))
	// The scheme knows APIKey, so this cannot fail for a valid object.
	_ = controllerutil.SetControllerReference(key, s, r.Scheme())
	return s
}

// apiErrorAbout is the message of an error of the API server on writing a
// Secret that holds one of raws (the key written, and the key it replaces). It is kept only when it quotes no part of the key
// in any encoding (an admission webhook or policy may echo the Secret it
// refuses): the message leaves the reconciler as a condition, an event or a
// log line, where no key material may go.
func apiErrorAbout(err error, raws ...string) string {
	msg := err.Error()
	if !slices.ContainsFunc(raws, func(raw string) bool { return keys.Quoted(msg, raw) }) {
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
	m, _, err := r.secretMeta(ctx, key, r.Client, r.APIReader)
	if err != nil {
		return err
	}
	if m != nil && ownedBy(m, key) {
		if err := r.deleteSecretUID(ctx, m.Namespace, m.Name, m.UID); err != nil {
			return err
		}
	}
	base := key.DeepCopy()
	controllerutil.RemoveFinalizer(key, keywardenv1alpha1.Finalizer)
	if err := r.Patch(ctx, key, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("removing finalizer: %w", err))
	}
	return nil
}
