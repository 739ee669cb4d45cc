package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
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

// forManager returns the view of the cache that one controller manager
// uses. Its Start returns when that manager stops, and then removes the
// event handlers the manager's controllers added to the shared informers:
// a controller that stops leaves its handlers registered, and a replica
// that lost and won leadership again would otherwise keep a stale set of
// handlers, each run on every event, for every time it did.
func (c *sharedCache) forManager() *managerCache {
	return &managerCache{sharedCache: c}
}

// managerCache is one controller manager's view of the shared cache; it
// tracks the event handlers added through it.
type managerCache struct {
	*sharedCache

	mu       sync.Mutex
	handlers []handlerRegistration
	stopped  bool
}

type handlerRegistration struct {
	informer cache.Informer
	handle   toolscache.ResourceEventHandlerRegistration
}

func (c *managerCache) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	inf, err := c.sharedCache.GetInformer(ctx, obj, opts...)
	if err != nil {
		return nil, err
	}
	return &trackedInformer{Informer: inf, owner: c}, nil
}

func (c *managerCache) GetInformerForKind(ctx context.Context, gvk schema.GroupVersionKind, opts ...cache.InformerGetOption) (cache.Informer, error) {
	inf, err := c.sharedCache.GetInformerForKind(ctx, gvk, opts...)
	if err != nil {
		return nil, err
	}
	return &trackedInformer{Informer: inf, owner: c}, nil
}

// Start returns when ctx ends, once the handlers added through this view
// are removed.
func (c *managerCache) Start(ctx context.Context) error {
	<-ctx.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	for _, h := range c.handlers {
		_ = h.informer.RemoveEventHandler(h.handle)
	}
	c.handlers = nil
	return nil
}

// track records a handler added through the view; one added after the
// manager stopped (by a controller still starting) is removed at once.
func (c *managerCache) track(inf cache.Informer, handle toolscache.ResourceEventHandlerRegistration, err error) (toolscache.ResourceEventHandlerRegistration, error) {
	if err != nil {
		return handle, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		_ = inf.RemoveEventHandler(handle)
		return handle, nil
	}
	c.handlers = append(c.handlers, handlerRegistration{informer: inf, handle: handle})
	return handle, nil
}

// trackedInformer is a shared informer as one controller manager sees it.
type trackedInformer struct {
	cache.Informer
	owner *managerCache
}

func (i *trackedInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	handle, err := i.Informer.AddEventHandler(h)
	return i.owner.track(i.Informer, handle, err)
}

func (i *trackedInformer) AddEventHandlerWithResyncPeriod(h toolscache.ResourceEventHandler, resync time.Duration) (toolscache.ResourceEventHandlerRegistration, error) {
	handle, err := i.Informer.AddEventHandlerWithResyncPeriod(h, resync)
	return i.owner.track(i.Informer, handle, err)
}

func (i *trackedInformer) AddEventHandlerWithOptions(h toolscache.ResourceEventHandler, opts toolscache.HandlerOptions) (toolscache.ResourceEventHandlerRegistration, error) {
	handle, err := i.Informer.AddEventHandlerWithOptions(h, opts)
	return i.owner.track(i.Informer, handle, err)
}
