//go:build bench

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/lifecycle"
	"keywarden.dev/keywarden/internal/policy"
	"keywarden.dev/keywarden/internal/seal"
)

// httpClient's timeout allows a scrape of the per-key series of 100,000
// keys from a controller busy recording their grants.
var httpClient = &http.Client{
	Timeout:   time.Minute,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
}

// newKey is an APIKey as a team would declare it, with the built-in policy.
func newKey(ns string, i int) *keywardenv1alpha1.APIKey {
	return &keywardenv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("key-%06d", i)},
		Spec: keywardenv1alpha1.APIKeySpec{
			DisplayName: "Benchmark key",
			Owner:       fmt.Sprintf("team-%d", i/4), // under the default limit of 10 keys an owner
			Role:        "reader",
			Scopes:      []keywardenv1alpha1.Scope{"logs:read"},
		},
	}
}

// writeIssued does, with a plain client, the minimum writes that issue an
// APIKey already created: add the finalizer, create the Secret (sealed with
// the controller's sealing key), record the hash and the grant in status.
// The objects it leaves are those the controller leaves: a controller
// started over them writes nothing.
func (e *env) writeIssued(k *keywardenv1alpha1.APIKey) error {
	if !controllerutil.ContainsFinalizer(k, keywardenv1alpha1.Finalizer) {
		base := k.DeepCopy()
		controllerutil.AddFinalizer(k, keywardenv1alpha1.Finalizer)
		if err := e.c.Patch(e.ctx, k, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("adding the finalizer: %w", err)
		}
	}
	raw, err := keys.Generate(keys.DefaultPrefix)
	if err != nil {
		return err
	}
	sealed, err := e.seals.Seal(e.ctx, k.UID, k.Status.KeySerial, keys.Hash(raw))
	if err != nil {
		return err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: k.Namespace, Name: k.Name,
			Annotations: map[string]string{seal.Annotation: sealed},
			Labels: map[string]string{
				keywardenv1alpha1.LabelManagedBy: keywardenv1alpha1.ManagedByValue,
				keywardenv1alpha1.LabelAPIKey:    k.Name,
				keywardenv1alpha1.LabelAPIKeyUID: string(k.UID),
			},
		},
		Type: keywardenv1alpha1.SecretType,
		Data: map[string][]byte{keywardenv1alpha1.SecretKeyField: []byte(raw)},
	}
	if err := controllerutil.SetControllerReference(k, s, e.c.Scheme()); err != nil {
		return err
	}
	if err := e.c.Create(e.ctx, s); err != nil {
		// Whatever the API server echoes, the key stays out of the output.
		return fmt.Errorf("creating the Secret: %s", strings.ReplaceAll(err.Error(), raw, "[redacted]"))
	}
	base := k.DeepCopy()
	now := metav1.NewTime(time.Now().Add(-e.issuedAgo).Truncate(time.Second))
	st := &k.Status
	st.KeyHash, st.KeyPrefix = keys.Hash(raw), keys.DisplayPrefix(raw)
	st.SecretRef = &keywardenv1alpha1.SecretReference{Name: s.Name, UID: string(s.UID), ResourceVersion: s.ResourceVersion}
	st.IssuedAt = &now
	st.ExpiresAt = policy.EffectiveExpiry(&k.Spec, st.IssuedAt, nil)
	st.Owner, st.Role, st.Scopes, st.ClassName = k.Spec.Owner, k.Spec.Role, k.Spec.Scopes, k.Spec.ClassName
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: keywardenv1alpha1.ConditionClassCompliant, Status: metav1.ConditionTrue, ObservedGeneration: k.Generation,
		Reason: keywardenv1alpha1.ReasonCompliant, Message: "The key fits its class",
	})
	lifecycle.SetConditions(st, k.Generation, lifecycle.Outcome{Phase: keywardenv1alpha1.PhaseActive})
	if err := e.c.Status().Patch(e.ctx, k, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("writing the status: %w", err)
	}
	return nil
}

// parallel runs f(i) for i in [0, n) on the given number of goroutines and
// returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var (
		next  = make(chan int)
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// prefill creates n issued APIKeys in ns with a plain client, as the
// controller would leave them, at the given concurrency. The manager must
// not be running.
func (e *env) prefill(ns string, from, to, workers int) {
	err := parallel(to-from, workers, func(i int) error {
		k := newKey(ns, from+i)
		k.Finalizers = []string{keywardenv1alpha1.Finalizer}
		if err := e.c.Create(e.ctx, k); err != nil {
			return err
		}
		return e.writeIssued(k)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// stream follows the objects of a list from their current state. It
// resumes its watch from the last version delivered whenever the API
// server ends it (the API server's watch cache closes a watcher that falls
// behind a burst), so that no event is lost; only a resume the API server
// refuses, or an error it sends, ends the stream early.
type stream struct {
	stop context.CancelFunc

	mu sync.Mutex
	// resumed counts the times the API server ended the watch and it was
	// resumed where it stopped.
	resumed int
	// ended says why the stream failed, if it did; failed is closed then.
	ended  string
	failed chan struct{}
}

// follow starts a stream of list's objects and calls handle, from one
// goroutine, with each event and the moment it arrived, until handle says
// it is done, the stream fails or stop is called.
func (e *env) follow(list client.ObjectList, opts []client.ListOption, handle func(watch.Event, time.Time) (done bool)) *stream {
	if err := e.c.List(e.ctx, list, append([]client.ListOption{client.Limit(1)}, opts...)...); err != nil {
		e.t.Fatal(err)
	}
	rv := list.GetResourceVersion()
	ctx, cancel := context.WithCancel(e.ctx)
	e.t.Cleanup(cancel)
	open := func() (watch.Interface, error) {
		return e.c.Watch(ctx, list, append([]client.ListOption{&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}}}, opts...)...)
	}
	w, err := open()
	if err != nil {
		e.t.Fatal(err)
	}
	s := &stream{stop: cancel, failed: make(chan struct{})}
	go func() {
		for {
			done, failure := consume(w, handle, &rv)
			switch {
			case failure != "":
				s.fail(failure)
				return
			case done || ctx.Err() != nil:
				return
			}
			if w, err = open(); err != nil {
				s.fail(fmt.Sprintf("the watch could not resume: %v", err))
				return
			}
			s.mu.Lock()
			s.resumed++
			s.mu.Unlock()
		}
	}()
	return s
}

// consume passes the events of w to handle until the watch ends or handle
// is done, keeping in rv the version of the last object delivered. It
// returns why the watch failed, if the API server sent an error.
func consume(w watch.Interface, handle func(watch.Event, time.Time) bool, rv *string) (done bool, failure string) {
	defer w.Stop()
	for ev := range w.ResultChan() {
		now := time.Now()
		if ev.Type == watch.Error {
			return false, fmt.Sprintf("the watch failed: %v", apierrors.FromObject(ev.Object))
		}
		if o, ok := ev.Object.(client.Object); ok {
			*rv = o.GetResourceVersion()
		}
		if handle(ev, now) {
			return true, ""
		}
	}
	return false, ""
}

func (s *stream) fail(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = why
	close(s.failed)
}

// trouble says how often the watch was resumed and why the stream failed,
// if it did; empty when neither happened.
func (s *stream) trouble() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out string
	if s.resumed > 0 {
		out += fmt.Sprintf(", the watch resumed %d times", s.resumed)
	}
	if s.ended != "" {
		out += " (" + s.ended + ")"
	}
	return out
}

// watcher records the moment a stream first shows each object in a state.
type watcher struct {
	*stream

	mu   sync.Mutex
	seen map[string]time.Time
	wait map[string]chan struct{}
	all  chan struct{}
	want int
}

// watchKeys records, for each APIKey of ns, when it is first seen with
// pred true. all is closed once want keys have been seen.
func (e *env) watchKeys(ns string, want int, pred func(*keywardenv1alpha1.APIKey) bool) *watcher {
	return e.watchObjects(&keywardenv1alpha1.APIKeyList{}, []client.ListOption{client.InNamespace(ns)}, want,
		func(ev watch.Event) (string, bool) {
			k, ok := ev.Object.(*keywardenv1alpha1.APIKey)
			return k.GetName(), ok && ev.Type != watch.Deleted && pred(k)
		})
}

// watchSecretDeletions records when each Keywarden Secret of ns is deleted.
func (e *env) watchSecretDeletions(ns string, want int) *watcher {
	return e.watchObjects(&corev1.SecretList{}, []client.ListOption{client.InNamespace(ns),
		client.MatchingLabels{keywardenv1alpha1.LabelManagedBy: keywardenv1alpha1.ManagedByValue}}, want,
		func(ev watch.Event) (string, bool) {
			s, ok := ev.Object.(*corev1.Secret)
			return s.GetName(), ok && ev.Type == watch.Deleted
		})
}

// watchObjects records when each object of list is first seen matching,
// until want of them have been.
func (e *env) watchObjects(list client.ObjectList, opts []client.ListOption, want int, match func(watch.Event) (string, bool)) *watcher {
	wr := &watcher{seen: map[string]time.Time{}, wait: map[string]chan struct{}{}, all: make(chan struct{}), want: want}
	wr.stream = e.follow(list, opts, func(ev watch.Event, now time.Time) bool {
		name, ok := match(ev)
		if !ok {
			return false
		}
		wr.mu.Lock()
		defer wr.mu.Unlock()
		if _, dup := wr.seen[name]; !dup {
			wr.seen[name] = now
			if ch := wr.wait[name]; ch != nil {
				close(ch)
			}
			if len(wr.seen) == wr.want {
				close(wr.all)
			}
		}
		return len(wr.seen) >= wr.want
	})
	return wr
}

// waitFor returns when name was first seen, waiting up to timeout.
func (w *watcher) waitFor(name string, timeout time.Duration) (time.Time, bool) {
	w.mu.Lock()
	if t, ok := w.seen[name]; ok {
		w.mu.Unlock()
		return t, true
	}
	ch := make(chan struct{})
	w.wait[name] = ch
	w.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(timeout):
		return time.Time{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[name], true
}

// waitAll waits until every wanted object was seen, and returns the time
// the last one was; it gives up early when the watch failed.
func (w *watcher) waitAll(timeout time.Duration) (time.Time, bool) {
	select {
	case <-w.all:
	case <-w.failed:
		return time.Time{}, false
	case <-time.After(timeout):
		return time.Time{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, t := range w.seen {
		if t.After(last) {
			last = t
		}
	}
	return last, true
}

// String tells how many objects the watch has seen of those wanted, and why
// it stopped if it stopped early: a watch that lost events is a failed
// measurement, not a slow one.
func (w *watcher) String() string {
	w.mu.Lock()
	seen := len(w.seen)
	w.mu.Unlock()
	return fmt.Sprintf("%d of %d", seen, w.want) + w.trouble()
}

func (w *watcher) at(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[name]
	return t, ok
}

func ready(k *keywardenv1alpha1.APIKey) bool {
	return apimeta.IsStatusConditionTrue(k.Status.Conditions, keywardenv1alpha1.ConditionReady)
}

// rawKeys reads the raw keys of ns from their Secrets, by APIKey name. They
// stay in memory and are never printed.
func (e *env) rawKeys(ns string) map[string]string {
	var list corev1.SecretList
	if err := e.c.List(e.ctx, &list, client.InNamespace(ns),
		client.MatchingLabels{keywardenv1alpha1.LabelManagedBy: keywardenv1alpha1.ManagedByValue}); err != nil {
		e.t.Fatal(err)
	}
	out := make(map[string]string, len(list.Items))
	for _, s := range list.Items {
		out[s.Labels[keywardenv1alpha1.LabelAPIKey]] = string(s.Data[keywardenv1alpha1.SecretKeyField])
	}
	return out
}

// verify asks the manager's verifier about a raw key and returns whether it
// is valid.
func verify(base, namespace, raw string) (bool, error) {
	body, _ := json.Marshal(map[string]string{"key": raw, "namespace": namespace})
	resp, err := httpClient.Post(base+"/v1/keys/verify", "application/json", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	defer func() { _ = resp.Body.Close() }()
	var r struct {
		Valid bool `json:"valid"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return false, fmt.Errorf("verifier answered %d: %w", resp.StatusCode, err)
	}
	return r.Valid, nil
}
