// Package metricsauth guards the manager's metrics endpoint the way the
// API server guards its own: a request must carry a bearer token that the
// API server authenticates (a TokenReview), for a user it authorizes to
// get the request's URL path (a SubjectAccessReview), such as a
// ServiceAccount bound to a role with nonResourceURLs: ["/metrics"].
//
// It asks the API server through a client of its own, with a low rate
// limit, so that a flood of scrapes slows only the scrapes, never the
// controllers' requests. Tokens are never logged.
package metricsauth

import (
	"context"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Reviews are asked for at this pace at most, with this burst.
const (
	reviewQPS   = 20
	reviewBurst = 40
)

// Filter is a metricsserver.Options FilterProvider.
func Filter(cfg *rest.Config, _ *http.Client) (metricsserver.Filter, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = reviewQPS, reviewBurst
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
}

// Wrap serves a request with next once it is authorized, and otherwise
// answers 401 (no token, or one the API server does not authenticate), 403
// (a user not allowed the path) or 500 (a review that failed).
func (a *Authorizer) Wrap(log logr.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := a.Decide(r)
		if err != nil {
			log.Error(err, "Unable to review a metrics request", "path", r.URL.Path)
		}
		if code != http.StatusOK {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="keywarden-metrics"`)
			}
			http.Error(w, http.StatusText(code), code)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Decide returns http.StatusOK for an authorized request, or the status
// that refuses it, with the error of a review that failed.
func (a *Authorizer) Decide(r *http.Request) (int, error) {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return http.StatusUnauthorized, nil
	}
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
