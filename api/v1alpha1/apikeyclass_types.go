package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIKeyClassKind is the kind of APIKeyClass objects.
const APIKeyClassKind = "APIKeyClass"

// AnnotationDefaultClass marks the APIKeyClass that applies to APIKeys
// without spec.className, when its value is "true".
const AnnotationDefaultClass = "keywarden.dev/is-default-class"

// OwnerLimitScope is where an owner's active keys are counted.
type OwnerLimitScope string

const (
	// OwnerLimitNamespace counts an owner's active keys in the key's
	// namespace.
	OwnerLimitNamespace OwnerLimitScope = "Namespace"
	// OwnerLimitCluster counts an owner's active keys of the class in
	// every namespace.
	OwnerLimitCluster OwnerLimitScope = "Cluster"
)

// DefaultMaxActiveKeysPerOwner is the limit of active keys per owner when a
// class sets none, or when no class applies.
const DefaultMaxActiveKeysPerOwner = 10

// DefaultExpiryWarning is how long before its expiry a key is marked
// ExpiringSoon when its class sets no expiryWarning, or when no class
// applies: seven days, as GitHub and GitLab warn.
const DefaultExpiryWarning = 7 * 24 * time.Hour

// DefaultMinRotationEvery is the shortest rotation schedule of a key
// whose class sets none shorter (and of a key of no class).
const DefaultMinRotationEvery = time.Hour

// APIKeyClassSpec is the policy for the keys of a class.
//
// +kubebuilder:validation:XValidation:rule="!has(self.defaultLifetime) || !has(self.maxLifetime) || !self.defaultLifetime.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || !self.maxLifetime.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.defaultLifetime.endsWith('d') ? int(self.defaultLifetime.substring(0, self.defaultLifetime.size() - 1)) * 86400 : self.defaultLifetime.endsWith('w') ? int(self.defaultLifetime.substring(0, self.defaultLifetime.size() - 1)) * 604800 : duration(self.defaultLifetime).getSeconds()) <= (self.maxLifetime.endsWith('d') ? int(self.maxLifetime.substring(0, self.maxLifetime.size() - 1)) * 86400 : self.maxLifetime.endsWith('w') ? int(self.maxLifetime.substring(0, self.maxLifetime.size() - 1)) * 604800 : duration(self.maxLifetime).getSeconds())",message="defaultLifetime may not exceed maxLifetime",fieldPath=".defaultLifetime"
type APIKeyClassSpec struct {
	// keyPrefix is what the keys of this class start with: 2 to 12
	// characters of [a-z0-9] ending in '_', such as pdm_. Defaults to kw_.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=12
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]{1,11}_$')",message="keyPrefix is 1 to 11 lower-case letters or digits followed by '_', such as pdm_"
	KeyPrefix string `json:"keyPrefix,omitempty"`

	// roles are the roles keys of this class may have, each with the scopes
	// it may grant. When empty, any role and any scope is allowed.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Roles []ClassRole `json:"roles,omitempty"`

	// defaultLifetime is the lifetime of keys that set neither expiresAt
	// nor lifetime, such as 30d or 720h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || self.endsWith('d') || self.endsWith('w') || duration(self) > duration('0s')",message="defaultLifetime must be positive"
	DefaultLifetime *Duration `json:"defaultLifetime,omitempty"`

	// maxLifetime caps the lifetime of keys: a key whose lifetime, or
	// whose expiresAt measured from its issuance, exceeds it is not issued.
	// Keys that set no expiry get this lifetime when there is no
	// defaultLifetime.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || self.endsWith('d') || self.endsWith('w') || duration(self) > duration('0s')",message="maxLifetime must be positive"
	MaxLifetime *Duration `json:"maxLifetime,omitempty"`

	// expiryWarning is how long before a key's expiry the key is marked
	// ExpiringSoon (a condition that leaves Ready as it is) and one Warning
	// Event, KeyExpiringSoon, is emitted, such as 3d or 72h.
	// Defaults to 168h (7 days); 0s turns the warning off. A key issued
	// for no longer than this is not warned: it was meant to be
	// short-lived.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.endsWith('d') ? int(self.substring(0, self.size() - 1)) * 86400 : self.endsWith('w') ? int(self.substring(0, self.size() - 1)) * 604800 : duration(self).getSeconds()) <= 315360000",message="expiryWarning must be at most 87600h (ten years)"
	ExpiryWarning *Duration `json:"expiryWarning,omitempty"`

	// rotation sets how the keys of this class rotate: a schedule and a
	// grace period for keys that set none, and bounds on both.
	// +optional
	Rotation *ClassRotation `json:"rotation,omitempty"`

	// maxActiveKeysPerOwner is how many active keys (issued or waiting to
	// be, not expired, revoked or being deleted) one owner may hold in a
	// namespace, or across namespaces (ownerLimitScope). Defaults to 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxActiveKeysPerOwner *int32 `json:"maxActiveKeysPerOwner,omitempty"`

	// ownerLimitScope is where maxActiveKeysPerOwner counts an owner's
	// keys: Namespace (the default), the owner's active keys in the key's
	// namespace; or Cluster, the owner's active keys of this class in
	// every namespace, so that an account's limit holds however many
	// namespaces its keys are spread over.
	// +optional
	// +kubebuilder:validation:Enum=Namespace;Cluster
	OwnerLimitScope OwnerLimitScope `json:"ownerLimitScope,omitempty"`
	// namespaceSelector selects, by their labels, the namespaces whose
	// APIKeys may use this class. A key of the class in another namespace
	// is never issued (Stalled, NamespaceNotAllowed); an issued key whose
	// namespace stops matching keeps its grant and verifies, but no longer
	// fits its class (ClassCompliant False) and is not reissued. Unset,
	// every namespace may; {} selects every namespace too.
	// +optional
	// +kubebuilder:validation:XValidation:rule="(!has(self.matchLabels) || size(self.matchLabels) <= 32) && (!has(self.matchExpressions) || (size(self.matchExpressions) <= 32 && self.matchExpressions.all(e, !has(e.values) || size(e.values) <= 64)))",message="a namespaceSelector holds at most 32 labels, 32 expressions and 64 values an expression"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="the operators of matchExpressions are In, NotIn, Exists and DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, !(e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist']) || (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="In and NotIn take one or more values; Exists and DoesNotExist take none"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// notifications sends the life of this class's keys (created, expiring
	// soon, expired, revoked and why, rotated, reissued, grant changed,
	// deleted) to a receiver, each as a CloudEvent signed with the class's shared
	// secret. Unset, nothing is sent.
	// +optional
	Notifications *ClassNotifications `json:"notifications,omitempty"`
}

// NotifySecretPrefix starts the name of the Secret, in the controller's
// namespace, that holds a class's shared secret: keywarden-notify-<class>.
const NotifySecretPrefix = "keywarden-notify-"

// ClassNotifications names the receiver of a class's notifications.
//
// +kubebuilder:validation:XValidation:rule="!has(self.caBundle) || self.url.startsWith('https://')",message="notifications.caBundle is for an https:// receiver"
type ClassNotifications struct {
	// url receives each notification as an HTTP POST of a structured
	// CloudEvent (application/cloudevents+json), signed in the
	// Keywarden-Signature header with the class's shared secret, the field
	// secret of the Secret keywarden-notify-<class> in the controller's
	// namespace. Redirects are not followed; any answer but 2xx is
	// retried, with the same event id. http:// is for receivers inside
	// the cluster: the body is readable on the way, though not alterable.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))",message="notifications.url must be an http:// or https:// URL"
	URL string `json:"url"`

	// caBundle is the PEM certificates of the authorities trusted for an
	// https receiver, in place of the system's.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	CABundle []byte `json:"caBundle,omitempty"`
}

// ClassRotation is a class's rules for rotation.
//
// +kubebuilder:validation:XValidation:rule="!has(self.every) || !has(self.maxEvery) || !self.every.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || !self.maxEvery.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.every.endsWith('d') ? int(self.every.substring(0, self.every.size() - 1)) * 86400 : self.every.endsWith('w') ? int(self.every.substring(0, self.every.size() - 1)) * 604800 : duration(self.every).getSeconds()) <= (self.maxEvery.endsWith('d') ? int(self.maxEvery.substring(0, self.maxEvery.size() - 1)) * 86400 : self.maxEvery.endsWith('w') ? int(self.maxEvery.substring(0, self.maxEvery.size() - 1)) * 604800 : duration(self.maxEvery).getSeconds())",message="rotation.every may not exceed rotation.maxEvery",fieldPath=".every"
// +kubebuilder:validation:XValidation:rule="!has(self.gracePeriod) || !has(self.maxGracePeriod) || !self.gracePeriod.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || !self.maxGracePeriod.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.gracePeriod.endsWith('d') ? int(self.gracePeriod.substring(0, self.gracePeriod.size() - 1)) * 86400 : self.gracePeriod.endsWith('w') ? int(self.gracePeriod.substring(0, self.gracePeriod.size() - 1)) * 604800 : duration(self.gracePeriod).getSeconds()) <= (self.maxGracePeriod.endsWith('d') ? int(self.maxGracePeriod.substring(0, self.maxGracePeriod.size() - 1)) * 86400 : self.maxGracePeriod.endsWith('w') ? int(self.maxGracePeriod.substring(0, self.maxGracePeriod.size() - 1)) * 604800 : duration(self.maxGracePeriod).getSeconds())",message="rotation.gracePeriod may not exceed rotation.maxGracePeriod",fieldPath=".gracePeriod"
// +kubebuilder:validation:XValidation:rule="!has(self.minEvery) || !has(self.every) || !self.every.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || !self.minEvery.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.minEvery.endsWith('d') ? int(self.minEvery.substring(0, self.minEvery.size() - 1)) * 86400 : self.minEvery.endsWith('w') ? int(self.minEvery.substring(0, self.minEvery.size() - 1)) * 604800 : duration(self.minEvery).getSeconds()) <= (self.every.endsWith('d') ? int(self.every.substring(0, self.every.size() - 1)) * 86400 : self.every.endsWith('w') ? int(self.every.substring(0, self.every.size() - 1)) * 604800 : duration(self.every).getSeconds())",message="rotation.every may not be shorter than rotation.minEvery",fieldPath=".every"
// +kubebuilder:validation:XValidation:rule="!has(self.minEvery) || !has(self.maxEvery) || !self.maxEvery.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || !self.minEvery.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.minEvery.endsWith('d') ? int(self.minEvery.substring(0, self.minEvery.size() - 1)) * 86400 : self.minEvery.endsWith('w') ? int(self.minEvery.substring(0, self.minEvery.size() - 1)) * 604800 : duration(self.minEvery).getSeconds()) <= (self.maxEvery.endsWith('d') ? int(self.maxEvery.substring(0, self.maxEvery.size() - 1)) * 86400 : self.maxEvery.endsWith('w') ? int(self.maxEvery.substring(0, self.maxEvery.size() - 1)) * 604800 : duration(self.maxEvery).getSeconds())",message="rotation.maxEvery may not be shorter than rotation.minEvery",fieldPath=".maxEvery"
type ClassRotation struct {
	// every is the rotation schedule of keys that set none, such as 30d
	// or 720h (at least 1m).
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || self.endsWith('d') || self.endsWith('w') || duration(self) >= duration('1m')",message="rotation.every must be at least 1m"
	Every *Duration `json:"every,omitempty"`

	// maxEvery requires rotation: a key of the class must rotate at least
	// this often. A new key whose schedule is longer is not issued
	// (Stalled, RotationRequired); a key that sets no schedule gets every,
	// or else this one.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || self.endsWith('d') || self.endsWith('w') || duration(self) >= duration('1m')",message="rotation.maxEvery must be at least 1m"
	MaxEvery *Duration `json:"maxEvery,omitempty"`

	// minEvery is the shortest schedule a key of the class may have (at
	// least 1m): each rotation costs the controller a
	// Secret write, a status write and an Event, and keys rotating every
	// minute by the thousand would starve everything else. A new key whose
	// schedule is shorter is not issued (Stalled, RotationTooFrequent); an
	// issued key's is held to it. Defaults to 1h, or to every or maxEvery
	// when the class sets one shorter.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.endsWith('d') ? int(self.substring(0, self.size() - 1)) * 86400 : self.endsWith('w') ? int(self.substring(0, self.size() - 1)) * 604800 : duration(self).getSeconds()) >= 60 && (self.endsWith('d') ? int(self.substring(0, self.size() - 1)) * 86400 : self.endsWith('w') ? int(self.substring(0, self.size() - 1)) * 604800 : duration(self).getSeconds()) <= 315360000",message="rotation.minEvery must be between 1m and 87600h"
	MinEvery *Duration `json:"minEvery,omitempty"`

	// gracePeriod is the grace period of keys that set none. Defaults to
	// 24h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.endsWith('d') ? int(self.substring(0, self.size() - 1)) * 86400 : self.endsWith('w') ? int(self.substring(0, self.size() - 1)) * 604800 : duration(self).getSeconds()) <= 315360000",message="gracePeriod must be at most 87600h (ten years)"
	GracePeriod *Duration `json:"gracePeriod,omitempty"`

	// maxGracePeriod bounds the grace period: a new key that asks for a
	// longer one is not issued (Stalled, GracePeriodExceedsMax), and an
	// issued key's previous keys are never valid longer than this after a
	// rotation.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$') || (self.endsWith('d') ? int(self.substring(0, self.size() - 1)) * 86400 : self.endsWith('w') ? int(self.substring(0, self.size() - 1)) * 604800 : duration(self).getSeconds()) <= 315360000",message="maxGracePeriod must be at most 87600h (ten years)"
	MaxGracePeriod *Duration `json:"maxGracePeriod,omitempty"`

	// revokeOnReuse revokes a key when one of its rotated-out keys is used
	// after its grace period (GitLab's reuse detection): whoever presents
	// an old key may hold a stolen copy, and the current key may be
	// stolen with it. Off by default: every such use is reported (event
	// RotatedKeyUsed) either way.
	// +optional
	RevokeOnReuse bool `json:"revokeOnReuse,omitempty"`
}

// ClassRole is a role and the scopes it may grant.
//
// +kubebuilder:validation:XValidation:rule="!has(self.scopeDescriptions) || self.scopeDescriptions.all(d, has(self.scopes) && d.scope in self.scopes)",message="scopeDescriptions may describe only the role's scopes",fieldPath=".scopeDescriptions"
type ClassRole struct {
	// name of the role, as in APIKey spec.role.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$')",message="a role is lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit, such as readonly or project-admin"
	Name string `json:"name"`

	// displayName is how lists and forms present the role to people, such
	// as ADMIN or "Read-only API key"; the name when unset. Keys and the
	// verifier's answers keep the name.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	DisplayName string `json:"displayName,omitempty"`

	// scopes the role may grant. A key of this role may ask for any subset;
	// a key that asks for none gets all of them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	Scopes []Scope `json:"scopes,omitempty"`

	// scopeDescriptions say what each scope lets a key do, for the people
	// who choose and review keys; kubectl describe shows them.
	// +optional
	// +listType=map
	// +listMapKey=scope
	// +kubebuilder:validation:MaxItems=64
	ScopeDescriptions []ScopeDescription `json:"scopeDescriptions,omitempty"`
}

// ScopeDescription says what a scope lets a key do.
type ScopeDescription struct {
	// scope is one of the role's scopes.
	// +required
	Scope Scope `json:"scope"`

	// description of what the scope lets a key do, such as "Read the
	// audit log".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description"`
}

// APIKeyClassStatus is written by the controller.
type APIKeyClassStatus struct {
	// observedGeneration is the generation of the spec last reconciled; 0
	// until the controller has seen the class, so that kstatus (Flux) and
	// Argo CD see it as in progress rather than as current.
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready is False when the class cannot be used as it is,
	// for example when it is one of two default classes.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// notifyingSince is when the controller began sending the notifications
	// of this class's keys: the class's creation when it named a receiver
	// from the start, otherwise when the receiver was added. Transitions
	// recorded before it are not sent.
	// +optional
	NotifyingSince *metav1.Time `json:"notifyingSince,omitempty"`
}

// APIKeyClass is the policy for a set of APIKeys, like a StorageClass for
// volumes: key prefix, allowed roles and scopes, lifetimes and the number of
// active keys one owner may hold.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=akc,categories=keywarden
// +kubebuilder:validation:XValidation:rule="!has(self.spec.notifications) || self.metadata.name.size() <= 236",message="a class with notifications may have a name of at most 236 characters: its shared secret is the Secret keywarden-notify-<class>"
// +kubebuilder:printcolumn:name="Prefix",type=string,JSONPath=`.spec.keyPrefix`
// +kubebuilder:printcolumn:name="Default",type=string,JSONPath=`.metadata.annotations.keywarden\.dev/is-default-class`
// +kubebuilder:printcolumn:name="Max Lifetime",type=string,JSONPath=`.spec.maxLifetime`
// +kubebuilder:printcolumn:name="Max Keys",type=integer,JSONPath=`.spec.maxActiveKeysPerOwner`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type APIKeyClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the class's policy.
	// +required
	Spec APIKeyClassSpec `json:"spec"`

	// status is the observed state of the class.
	// +kubebuilder:default={}
	// +optional
	Status APIKeyClassStatus `json:"status,omitempty"`
}

// APIKeyClassList is a list of APIKeyClasses.
//
// +kubebuilder:object:root=true
type APIKeyClassList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []APIKeyClass `json:"items"`
}

// IsDefault reports whether the class is annotated as the default class.
func (c *APIKeyClass) IsDefault() bool {
	return c.Annotations[AnnotationDefaultClass] == "true"
}
