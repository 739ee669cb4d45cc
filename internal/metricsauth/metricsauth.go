// Package metricsauth guards the manager's metrics endpoint the way the
// API server guards its own: a request must carry a bearer token that the
// API server authenticates (a TokenReview), for a user it authorizes to
// get the request's URL path (a SubjectAccessReview), such as a
// ServiceAccount bound to a role with nonResourceURLs: ["/metrics"].
//
// Decisions are cached for a short time by a hash of the token (never the
// token), so that a scraper costs the API server two reviews a minute, not
// two a scrape. Reviews are bounded per client address and overall, and a
// request past either bound is answered 429 at once instead of waiting:
// a flood of junk tokens cannot make the API server do more than a few
// reviews a second, nor hold up a scraper whose decision is cached or who
// comes from elsewhere. The reviews go through a client of its own, so
// that they never take the controllers' share of requests. Tokens are
// never logged.
package metricsauth

import (
	"context"
	"crypto/sha256"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Reviews are asked for at this pace at most, with this burst, overall and
// per client address; decisions are kept this long.
const (
	reviewQPS         = 20
	reviewBurst       = 40
	clientReviewQPS   = 2
	clientReviewBurst = 10
	allowedFor        = time.Minute
	refusedFor        = 10 * time.Second
	// staleFor is how long past allowedFor an allowed decision still
	// answers when no review may be made now (the budgets are spent by a
	// flood): a scraper is not locked out by others' junk.
	staleFor = 10 * time.Minute
	// maxEntries bounds the decisions and the client addresses kept.
	maxEntries = 4096
)

// Filter is a metricsserver.Options FilterProvider.
func Filter(cfg *rest.Config, _ *http.Client) (metricsserver.Filter, error) {
	cfg = rest.CopyConfig(cfg)
	// The client's own limiter makes a request wait; Decide refuses past
	// its own limits instead, so the client's is only a backstop.
	cfg.QPS, cfg.Burst = 2*reviewQPS, 2*reviewBurst
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	a := &Authorizer{Tokens: cs.AuthenticationV1().TokenReviews(), Access: cs.AuthorizationV1().SubjectAccessReviews()}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return a.Wrap(log, next), nil
	}, nil
}

// TokenReviewer and AccessReviewer are the API server's review endpoints.
type (
	TokenReviewer interface {
		Create(ctx context.Context, r *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
	}
	AccessReviewer interface {
		Create(ctx context.Context, r *authorizationv1.SubjectAccessReview, opts metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error)
	}
)

// Authorizer decides requests with the API server's reviews.
type Authorizer struct {
	Tokens TokenReviewer
	Access AccessReviewer
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// allowedFor, refusedFor and staleFor are the constants of the same
	// names unless set (tests shorten them).
	allowedFor, refusedFor, staleFor time.Duration

	once      sync.Once
	mu        sync.Mutex
	decisions map[[sha256.Size]byte]decision
	clients   map[string]*client
	reviews   *rate.Limiter
}

// decision is a cached answer for a token, method and path: fresh until
// until, and, when allowed, a fallback until stale.
type decision struct {
	code         int
	until, stale time.Time
}

// client is the review budget of one client address.
type client struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

func (a *Authorizer) init() {
	a.once.Do(func() {
		a.decisions = map[[sha256.Size]byte]decision{}
		a.clients = map[string]*client{}
		a.reviews = rate.NewLimiter(reviewQPS, reviewBurst)
		if a.allowedFor == 0 {
			a.allowedFor, a.refusedFor, a.staleFor = allowedFor, refusedFor, staleFor
		}
	})
}

func (a *Authorizer) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// cached returns the decision kept for the key, if one is fresh, and
// whether an allowed one is kept as a fallback.
func (a *Authorizer) cached(key [sha256.Size]byte, now time.Time) (code int, fresh, fallback bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d, ok := a.decisions[key]
	switch {
	case !ok:
		return 0, false, false
	case now.Before(d.until):
		return d.code, true, false
	}
	return 0, false, d.code == http.StatusOK && now.Before(d.stale)
}

// keep caches a decision; when the cache is full it first drops expired
// decisions, then any.
func (a *Authorizer) keep(key [sha256.Size]byte, code int, now time.Time) {
	ttl := a.refusedFor
	if code == http.StatusOK {
		ttl = a.allowedFor
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.decisions) >= maxEntries {
		for k, d := range a.decisions {
			if !now.Before(d.until) && !now.Before(d.stale) {
				delete(a.decisions, k)
			}
		}
		for k := range a.decisions {
			if len(a.decisions) < maxEntries {
				break
			}
			delete(a.decisions, k)
		}
	}
	d := decision{code: code, until: now.Add(ttl)}
	if code == http.StatusOK {
		d.stale = d.until.Add(a.staleFor)
	}
	a.decisions[key] = d
}

// mayReview spends one review of the client's budget and of the overall
// one, if both have one left.
func (a *Authorizer) mayReview(addr string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.clients[addr]
	if !ok {
		if len(a.clients) >= maxEntries {
			// Make room: the clients not seen for a minute, else the
			// one seen longest ago.
			var oldest string
			for k, old := range a.clients {
				if now.Sub(old.lastSeen) > time.Minute {
					delete(a.clients, k)
				} else if oldest == "" || old.lastSeen.Before(a.clients[oldest].lastSeen) {
					oldest = k
				}
			}
			if len(a.clients) >= maxEntries {
				delete(a.clients, oldest)
			}
		}
		c = &client{limiter: rate.NewLimiter(clientReviewQPS, clientReviewBurst)}
		a.clients[addr] = c
	}
	c.lastSeen = now
	if !c.limiter.AllowN(now, 1) {
		return false
	}
	return a.reviews.AllowN(now, 1)
}

// host is the client of a request: its IPv4 address, or the /64 network
// of its IPv6 address (one host may hold a whole /64).
func host(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		h = r.RemoteAddr
	}
	ip := net.ParseIP(h)
	if ip == nil || ip.To4() != nil {
		return h
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// Wrap serves a request with next once it is authorized, and otherwise
// answers 401 (no token, or one the API server does not authenticate), 403
// (a user not allowed the path), 429 (a review that would exceed the
// client's or the overall budget) or 500 (a review that failed).
func (a *Authorizer) Wrap(log logr.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := a.Decide(r)
		if err != nil {
			log.Error(err, "Unable to review a metrics request", "path", r.URL.Path)
		}
		if code != http.StatusOK {
			switch code {
			case http.StatusUnauthorized:
				w.Header().Set("WWW-Authenticate", `Bearer realm="keywarden-metrics"`)
			case http.StatusTooManyRequests:
				w.Header().Set("Retry-After", "1")
			}
			http.Error(w, http.StatusText(code), code)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Decide returns http.StatusOK for an authorized request, or the status
// that refuses it, with the error of a review that failed. A decision is
// kept for allowedFor (refusedFor when it refuses); a failed review is not
// kept. Past allowedFor an allowed token is reviewed again when the
// budgets allow, and otherwise still allowed for staleFor: a flood cannot
// lock out a scraper that was allowed.
func (a *Authorizer) Decide(r *http.Request) (int, error) {
	a.init()
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return http.StatusUnauthorized, nil
	}
	now := a.now()
	key := sha256.Sum256([]byte(verb(r.Method) + " " + r.URL.Path + "\x00" + token))
	code, fresh, fallback := a.cached(key, now)
	if fresh {
		return code, nil
	}
	if !a.mayReview(host(r), now) {
		if fallback {
			return http.StatusOK, nil
		}
		return http.StatusTooManyRequests, nil
	}
	code, err := a.review(r, token)
	if err == nil {
		a.keep(key, code, now)
	}
	return code, err
}

// review asks the API server who the token is and whether they may make
// the request.
func (a *Authorizer) review(r *http.Request, token string) (int, error) {
	tr, err := a.Tokens.Create(r.Context(), &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusInternalServerError, err
	}
	if !tr.Status.Authenticated {
		return http.StatusUnauthorized, nil
	}
	u := tr.Status.User
	extra := make(map[string]authorizationv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.Access.Create(r.Context(), &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: r.URL.Path, Verb: verb(r.Method)},
	}}, metav1.CreateOptions{})
	if err != nil {
		return http.StatusInternalServerError, err
	}
	if !sar.Status.Allowed {
		return http.StatusForbidden, nil
	}
	return http.StatusOK, nil
}

// bearer returns the token of an Authorization header of the Bearer
// scheme.
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// verb is the authorization verb of an HTTP method on a non-resource URL,
// as the API server names it.
func verb(method string) string {
	if method == http.MethodHead {
		return "get"
	}
	return strings.ToLower(method)
}
