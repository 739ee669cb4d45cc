package main

import (
	"context"
	"errors"
	"testing"
	"time"

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
