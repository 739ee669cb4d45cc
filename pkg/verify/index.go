package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/policy"
)

// entry is what verification needs of one APIKey: no more than a few
// strings, so that a large number of keys stays small in memory.
type entry struct {
	namespace, name string
	class           string
	owner, role     string
	scopes          []string
	sum             [sha256.Size]byte
	keyPrefix       string
	expiresAt       *time.Time
	standing        lifecycle.Standing
	// answer is the JSON answer to a verification of the key when it is
	// valid (see pack).
	answer        string
	trackLastUsed bool
	// lastUsedAt is status.lastUsedAt in Unix nanoseconds, 0 when unset.
	lastUsedAt int64
	// previous is set for a key a rotation replaced: it verifies before
	// validUntil and is refused as ROTATED from then on.
	previous   bool
	validUntil *time.Time
	// next is another entry whose hash begins with the same eight bytes
	// (see Index). Among them, Keywarden never gives two APIKeys one key,
	// so a hash two entries record answers CONFLICT for both until one of
	// them goes.
	next *entry
}

func (e *entry) nn() types.NamespacedName {
	return types.NamespacedName{Namespace: e.namespace, Name: e.name}
}

// Index maps key hashes to the APIKeys that hold them. It is safe for
// concurrent use.
//
// The map is keyed by the first eight bytes of the hash, the entries
// compared in full: a slot of 16 bytes instead of 40 keeps more of a large
// index in the caches (BenchmarkVerify: 203 ns before, 180 after). Hashes
// of generated keys that share eight bytes are as rare as they come; when
// they do, the entries are chained and told apart by the whole hash.
type Index struct {
	mu     sync.RWMutex
	byHash map[uint64]*entry
	// byName holds the hashes of each APIKey's keys: the current one, a
	// rotation's next one, and those rotated out.
	byName map[types.NamespacedName][][sha256.Size]byte

	// OnConflict, when set, is called (outside the index's lock) when an
	// APIKey comes to record a hash that other APIKeys already record.
	OnConflict func(added types.NamespacedName, others []types.NamespacedName)
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byHash: map[uint64]*entry{}, byName: map[types.NamespacedName][][sha256.Size]byte{}}
}

// short is the map key of a hash.
func short(sum *[sha256.Size]byte) uint64 {
	return binary.LittleEndian.Uint64(sum[:8])
}

// Len is the number of APIKeys indexed.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byName)
}

// lookup returns the entry of the hash, and whether other APIKeys record
// the same hash.
func (ix *Index) lookup(hash *[sha256.Size]byte) (e *entry, shared bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for o := ix.byHash[short(hash)]; o != nil; o = o.next {
		if o.sum != *hash {
			continue
		}
		if e != nil {
			return e, true
		}
		e = o
	}
	return e, false
}

// Upsert indexes the APIKey as it is now, replacing what was indexed for
// it: its current key, a rotation's next key and the keys rotated out. A
// key without a hash (not issued, or being reissued) is not indexed.
func (ix *Index) Upsert(k *keywardenv1alpha1.APIKey) {
	ix.upsert(types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, newEntries(k))
}

// upsert indexes the entries of the APIKey of that name in place of what
// was indexed for it.
func (ix *Index) upsert(nn types.NamespacedName, entries []*entry) {
	if len(entries) > 0 {
		// The map's key shares the strings of the entry's answer: the
		// object's own are not kept.
		nn = entries[0].nn()
	}
	var others []types.NamespacedName
	func() {
		ix.mu.Lock()
		defer ix.mu.Unlock()
		before := ix.byName[nn]
		ix.unlink(nn)
		if len(entries) == 0 {
			return
		}
		sums := make([][sha256.Size]byte, 0, len(entries))
		for _, e := range entries {
			if !slices.Contains(before, e.sum) {
				// Newly sharing a hash: an update of a key already
				// sharing one reports nothing again.
				for o := ix.byHash[short(&e.sum)]; o != nil; o = o.next {
					if o.sum == e.sum && !slices.Contains(others, o.nn()) {
						others = append(others, o.nn())
					}
				}
			}
			e.next = ix.byHash[short(&e.sum)]
			ix.byHash[short(&e.sum)] = e
			sums = append(sums, e.sum)
		}
		ix.byName[nn] = sums
	}()
	if len(others) > 0 && ix.OnConflict != nil {
		ix.OnConflict(nn, others)
	}
}

// Remove forgets the APIKey of that namespace and name.
func (ix *Index) Remove(namespace, name string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.unlink(types.NamespacedName{Namespace: namespace, Name: name})
}

// forgetUnlisted forgets the APIKeys of the namespace (of every namespace
// when empty) that are not listed.
func (ix *Index) forgetUnlisted(namespace string, listed map[types.NamespacedName]bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for nn := range ix.byName {
		if (namespace == "" || nn.Namespace == namespace) && !listed[nn] {
			ix.unlink(nn)
		}
	}
}

// unlink removes the APIKey's entries; the caller holds the lock.
func (ix *Index) unlink(nn types.NamespacedName) {
	sums, ok := ix.byName[nn]
	if !ok {
		return
	}
	delete(ix.byName, nn)
	for i := range sums {
		sum := &sums[i]
		var prev *entry
		for e := ix.byHash[short(sum)]; e != nil; {
			next := e.next
			if e.sum != *sum || e.namespace != nn.Namespace || e.name != nn.Name {
				prev, e = e, next
				continue
			}
			switch {
			case prev != nil:
				prev.next = next
			case next != nil:
				ix.byHash[short(sum)] = next
			default:
				delete(ix.byHash, short(sum))
			}
			e = next
		}
	}
}

// LastUsedAt is the status.lastUsedAt of the indexed APIKey of that
// namespace and name; zero when it has none or is not indexed.
func (ix *Index) LastUsedAt(nn types.NamespacedName) time.Time {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	sums := ix.byName[nn]
	if len(sums) == 0 {
		return time.Time{}
	}
	for e := ix.byHash[short(&sums[0])]; e != nil; e = e.next {
		if e.namespace == nn.Namespace && e.name == nn.Name && e.lastUsedAt != 0 {
			return time.Unix(0, e.lastUsedAt)
		}
	}
	return time.Time{}
}

// trustedClass is the class a request that trusts classes sees the key in:
// its granted class while the key fits it, none once the controller says
// it no longer does (its namespace left the class's namespaceSelector, or
// the class changed under it). A service that trusts a class trusts what
// the class admits today.
func trustedClass(k *keywardenv1alpha1.APIKey, granted string) string {
	if apimeta.IsStatusConditionFalse(k.Status.Conditions, keywardenv1alpha1.ConditionClassCompliant) {
		return ""
	}
	return granted
}

// newEntries returns the entries of the APIKey's keys: the current one
// first, then a rotation's next one (which verifies as the current one
// does), then those rotated out. A key without a current hash has none.
// What the generations share (the grant, the standing) is read once.
func newEntries(k *keywardenv1alpha1.APIKey) []*entry {
	type generation struct {
		hash, prefix string
		validUntil   *time.Time // a rotated-out key's end of grace
	}
	st := &k.Status
	gens := []generation{{hash: st.KeyHash, prefix: st.KeyPrefix}}
	if rot := st.Rotation; rot != nil {
		if n := rot.Next; n != nil {
			gens = append(gens, generation{hash: n.KeyHash, prefix: n.KeyPrefix})
		}
		for i := range rot.Previous {
			p := &rot.Previous[i]
			t := p.ValidUntil.Time // a copy: the entry keeps nothing of the object
			gens = append(gens, generation{p.KeyHash, p.KeyPrefix, &t})
		}
	}
	base := newEntry(k)
	out := make([]*entry, 0, len(gens))
	for i, g := range gens {
		sum, ok := keys.ParseHash(g.hash)
		if !ok && i == 0 {
			// Not issued, being reissued, or not a hash this verifier
			// understands: nothing can match it.
			return nil
		}
		if !ok || slices.ContainsFunc(out, func(o *entry) bool { return o.sum == sum }) {
			continue
		}
		e := *base
		e.scopes = slices.Clone(base.scopes) // pack points each entry's into its own answer
		e.sum, e.keyPrefix = sum, g.prefix
		e.previous, e.validUntil = g.validUntil != nil, g.validUntil
		e.pack()
		out = append(out, &e)
	}
	return out
}

// newEntry is what every key of the APIKey shares: its grant, as recorded
// by the controller in status (never what its spec asks for), and its
// standing.
func newEntry(k *keywardenv1alpha1.APIKey) *entry {
	st := &k.Status
	g := policy.Granted(&k.Spec, st)
	e := &entry{
		namespace:     k.Namespace,
		name:          k.Name,
		class:         trustedClass(k, g.ClassName),
		owner:         g.Owner,
		role:          g.Role,
		standing:      lifecycle.StandingOf(k),
		trackLastUsed: k.Spec.TrackLastUsed,
	}
	if st.LastUsedAt != nil {
		e.lastUsedAt = st.LastUsedAt.UnixNano()
	}
	if len(g.Scopes) > 0 {
		e.scopes = make([]string, len(g.Scopes))
		for i, s := range g.Scopes {
			e.scopes[i] = string(s)
		}
		slices.Sort(e.scopes)
	}
	if g.ExpiresAt != nil {
		t := g.ExpiresAt.Time // a copy: the entry keeps nothing of the object
		e.expiresAt = &t
	}
	return e
}

// pack writes the key's answer, as POST /v1/keys/verify writes it for a
// valid key, once, and points the entry's strings into it where they
// appear there as they are (the rest, strings JSON escapes, go into one
// allocation of their own). Left as they were, each string lay in a span
// of its own size class, so an answer from an index larger than the
// caches missed the cache once for each, and was encoded at every
// verification; now it is copied whole from one place.
func (e *entry) pack() {
	a := VerifyResponse{
		Valid: true, Namespace: e.namespace, Name: e.name, Class: e.class, Owner: e.owner, Role: e.role,
		Scopes: e.scopes, ExpiresAt: e.expiresAt, KeyPrefix: e.keyPrefix, Previous: e.previous, ValidUntil: e.validUntil,
	}
	e.answer = string(a.appendJSON(nil))
	fields := []*string{&e.namespace, &e.name, &e.class, &e.owner, &e.role, &e.keyPrefix}
	for i := range e.scopes {
		fields = append(fields, &e.scopes[i])
	}
	var rest []*string
	for _, f := range fields {
		if *f == "" {
			continue
		}
		// Any occurrence will do: the substring holds the same bytes.
		if i := strings.Index(e.answer, `"`+*f+`"`); i >= 0 {
			*f = e.answer[i+1 : i+1+len(*f)]
			continue
		}
		rest = append(rest, f)
	}
	if len(rest) == 0 {
		return
	}
	n := 0
	for _, f := range rest {
		n += len(*f)
	}
	var b strings.Builder
	b.Grow(n)
	for _, f := range rest {
		b.WriteString(*f)
	}
	all := b.String()
	for _, f := range rest {
		l := len(*f)
		*f, all = all[:l], all[l:]
	}
}
