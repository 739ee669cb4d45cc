package controllers

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// interner hands out one shared copy of each string it is given, so that the
// strings every cached APIKey repeats (its namespace, role, scopes, phase,
// condition reasons and messages) are held once, not once per key. It keeps
// at most max strings of at most maxLen bytes; others are returned as they
// are, so that unique values cannot make it grow without bound.
type interner struct {
	mu     sync.Mutex
	m      map[string]string
	max    int
	maxLen int
}

func newInterner(max, maxLen int) *interner {
	return &interner{m: map[string]string{}, max: max, maxLen: maxLen}
}

func (in *interner) intern(s string) string {
	if s == "" || len(s) > in.maxLen {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.m[s]; ok {
		return c
	}
	if len(in.m) < in.max {
		in.m[s] = s
	}
	return s
}

// cacheStrings is the interner of cached APIKeys.
var cacheStrings = newInterner(8192, 256)

// internAPIKey replaces the APIKey's repeated strings with shared copies.
func internAPIKey(k *keywardenv1alpha1.APIKey, in *interner) {
	k.APIVersion, k.Kind = in.intern(k.APIVersion), in.intern(k.Kind)
	k.Namespace = in.intern(k.Namespace)
	for i := range k.Finalizers {
		k.Finalizers[i] = in.intern(k.Finalizers[i])
	}
	s := &k.Spec
	s.Owner, s.Role, s.ClassName = in.intern(s.Owner), in.intern(s.Role), in.intern(s.ClassName)
	for i := range s.Scopes {
		s.Scopes[i] = keywardenv1alpha1.Scope(in.intern(string(s.Scopes[i])))
	}
	st := &k.Status
	st.Phase = keywardenv1alpha1.APIKeyPhase(in.intern(string(st.Phase)))
	st.ClassName = in.intern(st.ClassName)
	for i := range st.Scopes {
		st.Scopes[i] = keywardenv1alpha1.Scope(in.intern(string(st.Scopes[i])))
	}
	if st.SecretRef != nil && st.SecretRef.Name == k.Name {
		st.SecretRef.Name = k.Name
	}
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type, c.Reason, c.Message = in.intern(c.Type), in.intern(c.Reason), in.intern(c.Message)
		c.Status = metav1.ConditionStatus(in.intern(string(c.Status)))
	}
}
