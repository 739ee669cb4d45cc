package v1alpha1

// The facts about an APIKey that every part of Keywarden reads the same
// way: whose it is, which Secret holds it, which keys it makes valid.
// The controller, the verifier, the plugin and the console all read them
// here.

// GrantRecorded reports whether the controller has recorded the key's
// grant in status (status.owner is set). Keys issued by releases that did
// not record grants have none until the controller's first pass.
func (k *APIKey) GrantRecorded() bool { return k.Status.GrantRecorded() }

// GrantRecorded reports whether the controller has recorded a grant
// (status.owner is set; every grant has an owner). A recorded grant with
// no role is a key the controller granted nothing: issued before grants
// were recorded, its spec asked for a role its class does not allow.
func (st *APIKeyStatus) GrantRecorded() bool { return st.Owner != "" }

// Ungranted reports whether the key's grant is recorded with no role: the
// key verifies no request until its spec fits its class.
func (k *APIKey) Ungranted() bool { return k.Status.GrantRecorded() && k.Status.Role == "" }

// GrantedOwner is the owner the key is granted to once its grant is
// recorded, and the owner its spec declares before: the owner whose
// active-key limit it counts against, and the one people are shown.
func (k *APIKey) GrantedOwner() string {
	if k.GrantRecorded() {
		return k.Status.Owner
	}
	return k.Spec.Owner
}

// GrantedRole is the role the key is granted once its grant is recorded
// (empty when it is granted none), and the role its spec declares before.
func (k *APIKey) GrantedRole() string {
	if k.GrantRecorded() {
		return k.Status.Role
	}
	return k.Spec.Role
}

// GrantedClass is the class the key was issued under, or, before that is
// recorded, the class its spec names.
func (k *APIKey) GrantedClass() string {
	if k.Status.ClassName != "" {
		return k.Status.ClassName
	}
	return k.Spec.ClassName
}

// SecretName is the Secret that holds the key: the one status records,
// else spec.secretName, else the APIKey's own name.
func (k *APIKey) SecretName() string {
	if ref := k.Status.SecretRef; ref != nil && ref.Name != "" {
		return ref.Name
	}
	if k.Spec.SecretName != "" {
		return k.Spec.SecretName
	}
	return k.Name
}

// Generation says which of an APIKey's keys a hash is.
type Generation int

const (
	// HoldsNone: none of the APIKey's keys has the hash.
	HoldsNone Generation = iota
	// HoldsCurrent: the current key, status.keyHash.
	HoldsCurrent
	// HoldsNext: the key a rotation is writing into the Secret
	// (status.rotation.next).
	HoldsNext
	// HoldsPrevious: a key a rotation replaced (status.rotation.previous),
	// valid until its validUntil.
	HoldsPrevious
)

// Holds says which of the status's keys has the hash, and, for a key a
// rotation replaced, its record. Whether that key verifies now is the
// verifier's decision (expiry, revocation, grace).
func (st *APIKeyStatus) Holds(hash string) (Generation, *PreviousKey) {
	switch {
	case hash == "":
		return HoldsNone, nil
	case st.KeyHash == hash:
		return HoldsCurrent, nil
	case st.Rotation == nil:
		return HoldsNone, nil
	case st.Rotation.Next != nil && st.Rotation.Next.KeyHash == hash:
		return HoldsNext, nil
	}
	for i := range st.Rotation.Previous {
		if p := &st.Rotation.Previous[i]; p.KeyHash == hash {
			return HoldsPrevious, p
		}
	}
	return HoldsNone, nil
}
