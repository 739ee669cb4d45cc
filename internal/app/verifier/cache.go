package verifier

import (
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// cacheOptions are the verifier's manager cache, which holds nothing: the
// index has its own watch of APIKeys (verify.Feed) and everything else is
// read from the API server. A read of the cache fails rather than start an
// informer that would hold every object of its kind.
func cacheOptions() cache.Options {
	return cache.Options{ReaderFailOnMissingInformer: true}
}
