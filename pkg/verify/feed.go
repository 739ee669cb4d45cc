package verify

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/reconnect"
)

// Feed keeps an Index current with the API server's APIKeys: a reflector
// for each namespace it follows (one for the whole cluster when none)
// lists them, then watches them, and writes each change straight into the
// index. The index is the only copy the process keeps: no informer cache
// holds the objects, so each key costs its index entries and nothing of
// what a namespace editor writes into an APIKey stays. A list streamed
// from the API server is held until it ends as the entries it makes, which
// the index then takes as they are.
type Feed struct {
	index      *Index
	reflectors []*toolscache.Reflector
	watches    []*reportedListWatch
	synced     []atomic.Bool
}

// FeedOptions configure a Feed.
type FeedOptions struct {
	// Namespaces are those followed; all when empty.
	Namespaces []string
	// Freshness, when set, is told of each list and watch that fails, of
	// each watch opened and of each delivery, for each namespace.
	Freshness *Freshness
}

// NewFeed returns a feed of the index from the API server of cfg, through
// its HTTP client.
func NewFeed(cfg *rest.Config, httpClient *http.Client, ix *Index, o FeedOptions) (*Feed, error) {
	scheme := runtime.NewScheme()
	if err := keywardenv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &keywardenv1alpha1.GroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	rc, err := rest.RESTClientForConfigAndClient(c, httpClient)
	if err != nil {
		return nil, fmt.Errorf("a client of APIKeys: %w", err)
	}
	namespaces := slices.Clone(o.Namespaces)
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	f := &Feed{index: ix, synced: make([]atomic.Bool, len(namespaces))}
	for i, ns := range namespaces {
		lw := &reportedListWatch{fresh: o.Freshness}
		// Each attempt that cannot reach the API server is reported, and
		// tried again every half second, so that the index catches up
		// within that of the API server's return.
		lw.lw = toolscache.ToListerWatcherWithContext(reconnect.Patient(toolscache.NewListWatchFromClient(rc, "apikeys", ns, fields.Everything()), lw.failed))
		st := &feedStore{index: ix, namespace: ns, synced: &f.synced[i], fresh: o.Freshness, watch: lw}
		if ns != "" {
			lw.forbidden = st.forbidden
		}
		r := toolscache.NewReflectorWithOptions(lw, &keywardenv1alpha1.APIKey{}, st, toolscache.ReflectorOptions{
			Name: "apikeys " + ns, TypeDescription: "*v1alpha1." + keywardenv1alpha1.APIKeyKind,
		})
		f.reflectors = append(f.reflectors, r)
		f.watches = append(f.watches, lw)
	}
	return f, nil
}

// reportedListWatch lists and watches APIKeys of one namespace, and tells
// Freshness of each call that fails (a reflector retries a throttled (429)
// or refused call by itself, without a word to anyone) and of each watch
// it opens.
type reportedListWatch struct {
	lw    toolscache.ListerWatcherWithContext
	fresh *Freshness
	// forbidden, when set (a watch of one namespace), is called instead
	// when the API server refuses the verifier that namespace.
	forbidden func()
}

func (w *reportedListWatch) failed(err error) {
	switch {
	case err == nil:
	case w.forbidden != nil && apierrors.IsForbidden(err):
		w.forbidden()
	case w.fresh != nil:
		w.fresh.failed(w)
	}
}

func (w *reportedListWatch) ListWithContext(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
	obj, err := w.lw.ListWithContext(ctx, o)
	w.failed(err)
	return obj, err
}

func (w *reportedListWatch) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	wi, err := w.lw.WatchWithContext(ctx, o)
	switch {
	case err != nil:
		w.failed(err)
	case w.fresh != nil:
		w.fresh.opened(w)
	}
	return wi, err
}

func (w *reportedListWatch) List(o metav1.ListOptions) (runtime.Object, error) {
	return w.ListWithContext(context.Background(), o)
}

func (w *reportedListWatch) Watch(o metav1.ListOptions) (watch.Interface, error) {
	return w.WatchWithContext(context.Background(), o)
}

// Start lists and watches until ctx ends. It runs on every replica.
func (f *Feed) Start(ctx context.Context) error {
	done := make(chan struct{}, len(f.reflectors))
	for i, r := range f.reflectors {
		go func() {
			f.run(ctx, r, f.watches[i])
			done <- struct{}{}
		}()
	}
	for range f.reflectors {
		<-done
	}
	return nil
}

// run lists and watches again after each failure, which it logs and
// reports, as an informer does: after a pause that doubles from 800 ms up
// to 30 s, and starts again once a watch has run for two minutes.
func (f *Feed) run(ctx context.Context, r *toolscache.Reflector, w *reportedListWatch) {
	backoff := wait.Backoff{Duration: 800 * time.Millisecond, Cap: 30 * time.Second, Steps: 40, Factor: 2, Jitter: 1}
	_ = backoff.DelayWithReset(clock.RealClock{}, 2*time.Minute).Until(ctx, true, true, func(ctx context.Context) (bool, error) {
		if err := r.ListAndWatchWithContext(ctx); err != nil && ctx.Err() == nil {
			toolscache.DefaultWatchErrorHandler(ctx, r, err)
			w.failed(err)
		}
		return false, nil
	})
}

// NeedLeaderElection is false: every replica indexes every key.
func (*Feed) NeedLeaderElection() bool { return false }

// HasSynced reports whether the index holds every APIKey of the first
// list of each namespace followed.
func (f *Feed) HasSynced() bool {
	for i := range f.synced {
		if !f.synced[i].Load() {
			return false
		}
	}
	return true
}

// feedStore is what a reflector writes to: the index, for one namespace
// (all when empty).
type feedStore struct {
	index     *Index
	namespace string
	synced    *atomic.Bool
	// fresh, when set, is told of each delivery of watch.
	fresh *Freshness
	watch *reportedListWatch
}

// forbidden handles a namespace the verifier may not read (its RoleBinding
// there missing or removed): the namespace has no valid key, and the rest
// of the index stays current. Counted as stale, it would make every
// replica refuse every namespace's keys after --verifier-max-staleness,
// at the hand of whoever may remove a RoleBinding in one namespace.
func (s *feedStore) forbidden() {
	s.index.forgetUnlisted(s.namespace, nil)
	s.synced.Store(true)
	s.delivered()
}

// delivered tells Freshness that the watch delivered something.
func (s *feedStore) delivered() {
	if s.fresh != nil {
		s.fresh.delivered(s.watch)
	}
}

// Bookmark is the API server saying the watch is current: nothing
// changed up to its version.
func (s *feedStore) Bookmark(string) error {
	s.delivered()
	return nil
}

// indexed is an APIKey as the index takes it: its name and its entries.
// A streamed list holds these (the reflector's temporary store keys them
// by their metadata), not the objects.
type indexed struct {
	metav1.ObjectMeta // the namespace and name alone
	entries           []*entry
}

func (in *indexed) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject returns the record itself: nothing changes it once made.
func (in *indexed) DeepCopyObject() runtime.Object { return in }

func (in *indexed) name() types.NamespacedName {
	return types.NamespacedName{Namespace: in.Namespace, Name: in.Name}
}

// indexedOf is the record of an APIKey (or of a tombstone's), or the
// record itself.
func indexedOf(obj any) (*indexed, error) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	switch o := obj.(type) {
	case *indexed:
		return o, nil
	case *keywardenv1alpha1.APIKey:
		return &indexed{ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name}, entries: newEntries(o)}, nil
	}
	return nil, fmt.Errorf("not an APIKey: %T", obj)
}

func (s *feedStore) Add(obj any) error { return s.Update(obj) }

func (s *feedStore) Update(obj any) error {
	in, err := indexedOf(obj)
	if err != nil {
		return err
	}
	s.index.upsert(in.name(), in.entries)
	s.delivered()
	return nil
}

func (s *feedStore) Delete(obj any) error {
	in, err := indexedOf(obj)
	if err != nil {
		return err
	}
	s.index.Remove(in.Namespace, in.Name)
	s.delivered()
	return nil
}

// Replace makes the index's keys of the namespace those of the list: it
// forgets the APIKeys the list does not have, then indexes each listed
// one (a key whose entries did not change reports no conflict again).
func (s *feedStore) Replace(list []any, _ string) error {
	listed := make(map[types.NamespacedName]bool, len(list))
	records := make([]*indexed, 0, len(list))
	for i, obj := range list {
		in, err := indexedOf(obj)
		if err != nil {
			return err
		}
		list[i] = nil // the store owns the list: let the object go
		listed[in.name()] = true
		records = append(records, in)
	}
	s.index.forgetUnlisted(s.namespace, listed)
	for _, in := range records {
		s.index.upsert(in.name(), in.entries)
	}
	s.synced.Store(true)
	s.delivered()
	return nil
}

// Resync has nothing to do: the index holds no object to deliver again.
func (*feedStore) Resync() error { return nil }

// Transformer makes each object of a streamed list the record the index
// takes, while the list is held.
func (s *feedStore) Transformer() toolscache.TransformFunc {
	return func(obj any) (any, error) {
		if _, ok := obj.(*keywardenv1alpha1.APIKey); !ok {
			return obj, nil
		}
		return indexedOf(obj)
	}
}
