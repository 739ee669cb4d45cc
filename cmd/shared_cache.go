package main

import (
	"context"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// sharedCache is the verifier manager's cache as the controller manager
// sees it, so that a replica holds one copy of every APIKey, not two. The
// verifier manager runs it for the life of the process; the controller
// manager, built again each time it wins leadership, only uses it: Start
// waits for the end of its context, and registering an index that is
// already there is not an error.
type sharedCache struct {
	cache.Cache

	mu      sync.Mutex
	indexed map[string]bool
}

func newSharedCache(c cache.Cache) *sharedCache {
	return &sharedCache{Cache: c, indexed: map[string]bool{}}
}

// Start does not start the cache, which runs already; it returns when ctx
// ends, as a cache's Start does.
func (c *sharedCache) Start(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// IndexField registers the index once; later registrations of the same
// field of the same type are no-ops.
func (c *sharedCache) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	key := fmt.Sprintf("%T/%s", obj, field)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.indexed[key] {
		return nil
	}
	if err := c.Cache.IndexField(ctx, obj, field, extract); err != nil {
		return err
	}
	c.indexed[key] = true
	return nil
}
