package v1alpha1

// Condition types, in the kstatus convention that Flux health checks and
// `kubectl wait --for=condition=Ready` understand.
const (
	// ConditionReady is True when the key is issued: its Secret exists and
	// its hash is recorded in status. A key revoked as its spec declares
	// has no Ready condition: it holds no key, and it has reached its
	// declared state (kstatus reads it as current).
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is working towards
	// the declared state: issuing, reissuing, retrying after an error, or
	// waiting for a place under the owner's limit (phase Refused).
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the controller cannot make progress
	// without a change from a person: a key its class does not allow, a
	// taken Secret name, an expired key, or one the verifier revoked while
	// its spec still declares it active. On an issued key that stays Ready,
	// it reports a change of the spec that was refused: the key keeps its
	// previous grant.
	ConditionStalled = "Stalled"
	// ConditionClassCompliant is False when an issued key no longer fits
	// its class (the class changed after issuance). It does not affect
	// Ready: changing a class never revokes issued keys.
	ConditionClassCompliant = "ClassCompliant"
	// ConditionExpiringSoon is True while an issued key's expiry is within
	// its class's expiryWarning. It does not affect Ready.
	ConditionExpiringSoon = "ExpiringSoon"
)

// Condition reasons.
const (
	// ReasonKeyIssued: the key is issued and its Secret is in place.
	ReasonKeyIssued = "KeyIssued"
	// ReasonIssuing: the key is being issued.
	ReasonIssuing = "Issuing"
	// ReasonReissuing: the key's Secret was deleted or changed; the old key
	// is invalid and a new one is being issued.
	ReasonReissuing = "Reissuing"
	// ReasonExpired: the key reached its expiry.
	ReasonExpired = "Expired"
	// ReasonExpiringSoon: the key's expiry is within its class's
	// expiryWarning.
	ReasonExpiringSoon = "ExpiringSoon"
	// ReasonRevoked: the key was revoked.
	ReasonRevoked = "Revoked"
	// ReasonRotatedKeyReused: a rotated-out key of a class with
	// revokeOnReuse was used after its grace, which revoked the key.
	ReasonRotatedKeyReused = "RotatedKeyReused"
	// ReasonKeyReported: the key was reported as leaked (POST
	// /v1/keys/report), which revoked it.
	ReasonKeyReported = "KeyReported"
	// ReasonSecretConflict: a Secret of the target name exists and does not
	// belong to this APIKey; it is left untouched.
	ReasonSecretConflict = "SecretConflict"
	// ReasonSecretInvalid: the API server refuses the Secret as built from
	// the spec (for example a secretTemplate label it does not accept).
	ReasonSecretInvalid = "SecretInvalid"
	// ReasonReconcileError: a transient error; the controller retries with
	// backoff.
	ReasonReconcileError = "ReconcileError"
	// ReasonClassNotFound: spec.className names no APIKeyClass.
	ReasonClassNotFound = "ClassNotFound"
	// ReasonNamespaceNotAllowed: the key's class does not admit its
	// namespace (spec.namespaceSelector).
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonInvalidNamespaceSelector: the class's namespaceSelector cannot
	// be evaluated; the class admits no namespace until it is fixed.
	ReasonInvalidNamespaceSelector = "InvalidNamespaceSelector"
	// ReasonAmbiguousDefaultClass: more than one APIKeyClass is annotated as
	// the default.
	ReasonAmbiguousDefaultClass = "AmbiguousDefaultClass"
	// ReasonRoleNotAllowed: the class does not list the key's role.
	ReasonRoleNotAllowed = "RoleNotAllowed"
	// ReasonScopeNotAllowed: the class does not let the key's role grant
	// one of its scopes.
	ReasonScopeNotAllowed = "ScopeNotAllowed"
	// ReasonLifetimeExceedsMax: the key would live longer than the class's
	// maxLifetime.
	ReasonLifetimeExceedsMax = "LifetimeExceedsMax"
	// ReasonActiveKeyLimit: the owner already holds as many active keys as
	// the class allows; the key is issued once one of them goes.
	ReasonActiveKeyLimit = "ActiveKeyLimit"
	// ReasonRotationRequired: the key's class requires a rotation schedule
	// no longer than its rotation.maxEvery.
	ReasonRotationRequired = "RotationRequired"
	// ReasonRotationTooFrequent: the key would rotate more often than its
	// class's rotation.minEvery (by default 1h) allows.
	ReasonRotationTooFrequent = "RotationTooFrequent"
	// ReasonGracePeriodExceedsMax: the key asks for a grace period longer
	// than its class's rotation.maxGracePeriod.
	ReasonGracePeriodExceedsMax = "GracePeriodExceedsMax"
	// ReasonExpiryInPast: the key's spec.expiresAt had passed already when
	// the APIKey was created; nothing is issued until it is set later.
	ReasonExpiryInPast = "ExpiryInPast"
	// ReasonCompliant: the key fits its class.
	ReasonCompliant = "Compliant"
	// ReasonDeleting: the APIKey is being deleted.
	ReasonDeleting = "Deleting"
)

// Event reasons.
const (
	// EventKeyIssued: a key was issued into its Secret.
	EventKeyIssued = "KeyIssued"
	// EventKeyReissued: the Secret was lost or changed and a new key was issued.
	EventKeyReissued = "KeyReissued"
	// EventKeyExpired: the key expired and its Secret was deleted.
	EventKeyExpired = "KeyExpired"
	// EventKeyRotated: a new key replaced the key in its Secret; the
	// previous key stays valid for its grace period.
	EventKeyRotated = "KeyRotated"
	// EventSecretReplaced (Warning): a rotation could not write the new
	// key into the Secret in place and replaced the Secret; running pods
	// that mount it keep the previous key until they restart.
	EventSecretReplaced = "SecretReplaced"
	// EventRotatedKeyUsed (Warning, from the verifier): a rotated-out key
	// was used after its grace period; at most once a minute for each
	// key, on each replica.
	EventRotatedKeyUsed = "RotatedKeyUsed"
	// EventKeyReported (Warning, from the verifier): a key of the APIKey
	// was reported as leaked; the APIKey is revoked.
	EventKeyReported = "KeyReported"
	// EventKeyExpiringSoon (Warning): the key's expiry came within its
	// class's expiryWarning; emitted once.
	EventKeyExpiringSoon = "KeyExpiringSoon"
	// EventKeyRevoked: the key was revoked and its Secret was deleted.
	EventKeyRevoked = "KeyRevoked"
	// EventKeyRefused: the owner's active-key limit keeps the key from being
	// issued.
	EventKeyRefused = "KeyRefused"
	// EventPolicyViolation: the key's class does not allow it.
	EventPolicyViolation = "PolicyViolation"
	// EventSecretConflict: the target Secret belongs to something else.
	EventSecretConflict = "SecretConflict"
	// EventSecretAdopted: a Secret no APIKey controlled, holding the key
	// status records (a restore), is the APIKey's again.
	EventSecretAdopted = "SecretAdopted"
	// EventKeyReissuedAfterRestore: a Secret no APIKey controlled held a
	// key that the APIKey's status never recorded (a restore without the
	// status), and no status came back in time: a new key was issued into
	// it.
	EventKeyReissuedAfterRestore = "KeyReissuedAfterRestore"
	// EventGrantChanged: a change of an issued key's spec was admitted and
	// its grant changed; the note names what changed.
	EventGrantChanged = "GrantChanged"
	// EventGrantChangeRefused: a change of an issued key's spec was refused;
	// the key keeps its grant.
	EventGrantChangeRefused = "GrantChangeRefused"
	// EventKeyConflict: another APIKey records the same key hash; the
	// verifier refuses the key for both.
	EventKeyConflict = "KeyConflict"
	// EventSecretTampered: the key's Secret held a value Keywarden did not
	// seal for the APIKey, or not the issued key; it was deleted and a new
	// key issued.
	EventSecretTampered = "SecretTampered"
)

// Labels, annotations and names the controller uses.
const (
	// LabelManagedBy marks Secrets written by Keywarden; the controller
	// watches only Secrets with this label.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "keywarden"
	// LabelAPIKey names the APIKey a Secret belongs to.
	LabelAPIKey = "keywarden.dev/apikey"
	// LabelAPIKeyUID holds the UID of the APIKey a Secret belongs to.
	LabelAPIKeyUID = "keywarden.dev/apikey-uid"
	// SecretType is the type of Secrets that hold keys.
	SecretType = "keywarden.dev/api-key"
	// SecretKeyField is the data key under which the raw key is stored.
	SecretKeyField = "key"
	// Finalizer makes the controller delete the Secret before the APIKey
	// goes.
	Finalizer = "keywarden.dev/secret-cleanup"
)
