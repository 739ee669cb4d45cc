package main

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// indexCounter is a cache that counts index registrations and, like an
// informer's indexer, refuses the same index twice.
type indexCounter struct {
	cache.Cache
	calls int
	seen  map[string]bool
}

func (c *indexCounter) IndexField(_ context.Context, _ client.Object, field string, _ client.IndexerFunc) error {
	c.calls++
	if c.seen[field] {
		return errors.New("indexer conflict")
	}
	c.seen[field] = true
	return nil
}

func TestSharedCacheIndexesOnce(t *testing.T) {
	inner := &indexCounter{seen: map[string]bool{}}
	c := newSharedCache(inner)
	extract := func(client.Object) []string { return nil }
	for i := range 3 {
		if err := c.IndexField(t.Context(), &keywardenv1alpha1.APIKey{}, "spec.owner", extract); err != nil {
			t.Fatalf("registration %d: %v", i+1, err)
		}
	}
	if err := c.IndexField(t.Context(), &keywardenv1alpha1.APIKeyClass{}, "spec.owner", extract); err == nil {
		t.Fatal("another type's index of the same field name was not passed on")
	}
	if inner.calls != 2 {
		t.Fatalf("the cache saw %d registrations, want 2", inner.calls)
	}
}

func TestSharedCacheStartWaitsForContext(t *testing.T) {
	c := newSharedCache(nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Start returned %v before its context ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// handlerCounter is a cache whose one informer counts the event handlers
// registered on it.
type handlerCounter struct {
	cache.Cache
	informer *countingInformer
}

func (c *handlerCounter) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	return c.informer, nil
}

type countingInformer struct {
	cache.Informer
	mu     sync.Mutex
	next   int
	active map[int]bool
}

type handle struct{ id int }

func (h handle) HasSynced() bool { return true }

func (h handle) HasSyncedChecker() toolscache.DoneChecker { return nil }

func (i *countingInformer) AddEventHandlerWithOptions(toolscache.ResourceEventHandler, toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.next++
	i.active[i.next] = true
	return handle{i.next}, nil
}

func (i *countingInformer) RemoveEventHandler(h toolscache.ResourceEventHandlerRegistration) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.active, h.(handle).id)
	return nil
}

func (i *countingInformer) count() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.active)
}

// TestManagerCacheRemovesItsHandlers runs three controller managers one
// after the other on the shared cache, as a replica does that loses and
// wins leadership, and checks that only the running one's handlers stay.
func TestManagerCacheRemovesItsHandlers(t *testing.T) {
	inner := &handlerCounter{informer: &countingInformer{active: map[int]bool{}}}
	shared := newSharedCache(inner)
	for round := 1; round <= 3; round++ {
		view := shared.forManager()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- view.Start(ctx) }()
		for range 2 { // a controller's For and Watches
			inf, err := view.GetInformer(ctx, &keywardenv1alpha1.APIKey{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := inf.AddEventHandlerWithOptions(toolscache.ResourceEventHandlerFuncs{}, toolscache.HandlerOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if n := inner.informer.count(); n != 2 {
			t.Fatalf("manager %d running: %d handlers registered, want its 2", round, n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := inner.informer.count(); n != 0 {
			t.Fatalf("manager %d stopped: %d handlers left registered", round, n)
		}
		// A controller that was still starting adds its handler late.
		inf, _ := view.GetInformer(ctx, &keywardenv1alpha1.APIKey{})
		if _, err := inf.AddEventHandlerWithOptions(toolscache.ResourceEventHandlerFuncs{}, toolscache.HandlerOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := inner.informer.count(); n != 0 {
			t.Fatalf("manager %d stopped: a handler added late was left registered", round)
		}
	}
}
