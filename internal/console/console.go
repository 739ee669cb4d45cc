// Package console is Keywarden's web console: the API-keys page of the
// reference products, on the cluster's own permissions. It has no power of
// its own: a person signs in with a Kubernetes bearer token (or arrives
// through an authenticating proxy that passes one), and every read and
// write is made with that token. The token lives only in an encrypted,
// HttpOnly, Secure, SameSite=Strict cookie; every form carries a token
// bound to it; the pages are server-rendered under a strict
// Content-Security-Policy, with a little script for the copy button.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keyops"
	"keywarden.dev/keywarden/internal/keyview"
	"keywarden.dev/keywarden/internal/limits"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// cookieName is the session cookie's name; the __Host- prefix makes
// browsers keep it only when Secure, without a Domain, for the path /.
const cookieName = "__Host-keywarden-console"

// Options configure the console.
type Options struct {
	// Config is how to reach the API server: its address and CA. Any
	// credentials in it are dropped: the console acts only with the
	// tokens people bring.
	Config *rest.Config
	// SessionTTL is how long a sign-in lasts (default 8h).
	SessionTTL time.Duration
	// ManagerWait is how long to wait for the manager to pick up a change
	// before saying none seems to run (default 10s); IssueTimeout how long
	// to wait for a key to be issued (default 60s).
	ManagerWait, IssueTimeout time.Duration
	// TrustAuthorizationHeader takes the bearer token of an Authorization
	// header, which an authenticating proxy in front of the console sets,
	// instead of a sign-in. Only when every request reaches the console
	// through that proxy.
	TrustAuthorizationHeader bool
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client a sign-in is limited by; without them, every client behind a
	// proxy shares the proxy's address.
	TrustedProxies []netip.Prefix
	// ControllerNamespace holds the classes' shared secrets (default
	// keywarden-system).
	ControllerNamespace string
	Log                 logr.Logger
}

// Server serves the console.
type Server struct {
	opts   Options
	base   *rest.Config
	scheme *runtime.Scheme
	mapper apimeta.RESTMapper
	sess   *sessions
	pages  map[string]*template.Template
	now    func() time.Time
	// signIns limits sign-ins, each a review by the API server, by
	// address and in all.
	signIns *limits.PerSource
}

// Sign-ins allowed to one address (an IPv4 address, an IPv6 /64) and to
// everyone together. Behind a proxy, every client shares the proxy's
// address unless the proxy is trusted (Options.TrustedProxies).
const (
	signInRate         = 1
	signInBurst        = 10
	signInGlobalRate   = 10
	signInGlobalBurst  = 50
	signInSourcesKnown = 4096
)

// New builds the console.
func New(o Options) (*Server, error) {
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.ManagerWait <= 0 {
		o.ManagerWait = 10 * time.Second
	}
	if o.ControllerNamespace == "" {
		o.ControllerNamespace = "keywarden-system"
	}
	if o.IssueTimeout <= 0 {
		o.IssueTimeout = time.Minute
	}
	sess, err := newSessions()
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, base: rest.AnonymousClientConfig(o.Config), scheme: keyops.Scheme(), sess: sess, pages: pages, now: time.Now,
		signIns: &limits.PerSource{Rate: signInRate, Burst: signInBurst, Sources: signInSourcesKnown,
			Global: rate.NewLimiter(signInGlobalRate, signInGlobalBurst)}}
	// The kinds the console reads, mapped without discovery (which a
	// person's token may not be allowed).
	m := apimeta.NewDefaultRESTMapper(nil)
	for _, k := range []struct {
		gvk              schema.GroupVersionKind
		plural, singular string
		scope            apimeta.RESTScope
	}{
		{keywardenv1alpha1.GroupVersion.WithKind("APIKey"), "apikeys", "apikey", apimeta.RESTScopeNamespace},
		{keywardenv1alpha1.GroupVersion.WithKind("APIKeyClass"), "apikeyclasses", "apikeyclass", apimeta.RESTScopeRoot},
		{schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, "secrets", "secret", apimeta.RESTScopeNamespace},
		{schema.GroupVersionKind{Version: "v1", Kind: "Event"}, "events", "event", apimeta.RESTScopeNamespace},
	} {
		gvr := k.gvk.GroupVersion()
		m.AddSpecific(k.gvk, gvr.WithResource(k.plural), gvr.WithResource(k.singular), k.scope)
	}
	s.mapper = m
	return s, nil
}

// Handler is the console's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.signedIn(s.logout))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/keys", http.StatusSeeOther) })
	mux.HandleFunc("GET /keys", s.signedIn(s.keys))
	mux.HandleFunc("GET /keys/new", s.signedIn(s.newKeyPage))
	mux.HandleFunc("POST /keys/new", s.signedIn(s.createKey))
	mux.HandleFunc("GET /keys/{ns}/{name}", s.signedIn(s.key))
	mux.HandleFunc("GET /keys/{ns}/{name}/revoke", s.signedIn(s.revokePage))
	mux.HandleFunc("POST /keys/{ns}/{name}/revoke", s.signedIn(s.revoke))
	mux.HandleFunc("GET /keys/{ns}/{name}/rotate", s.signedIn(s.rotatePage))
	mux.HandleFunc("POST /keys/{ns}/{name}/rotate", s.signedIn(s.rotate))
	mux.HandleFunc("GET /keys/{ns}/{name}/edit", s.signedIn(s.editPage))
	mux.HandleFunc("POST /keys/{ns}/{name}/edit", s.signedIn(s.editKey))
	mux.HandleFunc("GET /keys/{ns}/{name}/delete", s.signedIn(s.deletePage))
	mux.HandleFunc("POST /keys/{ns}/{name}/delete", s.signedIn(s.deleteKey))
	mux.HandleFunc("POST /keys/selected", s.signedIn(s.selectedPage))
	mux.HandleFunc("POST /keys/selected/{action}", s.signedIn(s.actOnSelected))
	mux.HandleFunc("GET /classes", s.signedIn(s.classes))
	mux.HandleFunc("POST /classes/{name}/shared-secret/{action}", s.signedIn(s.sharedSecret))
	return s.secure(mux)
}

// contentSecurityPolicy lets the pages load only the console's own style
// sheet and script, post forms only to the console, and be framed by no
// one.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// secure sets the headers every response carries, refuses requests that
// another site made a browser send, and logs each request without its
// token or any key.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		post := r.Method != http.MethodGet && r.Method != http.MethodHead
		switch {
		case post && !sameOrigin(r):
			s.message(rec, r, http.StatusForbidden, "Refused", "This form was sent from another site. Open the console and submit it there.", nil)
		case post && r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
			s.message(rec, r, http.StatusUnsupportedMediaType, "Refused", "The console takes only its own forms.", nil)
		default:
			// The console's forms are small: no one fills memory or disk.
			r.Body = http.MaxBytesReader(rec, r.Body, 64<<10)
			next.ServeHTTP(rec, r)
		}
		s.opts.Log.V(1).Info("Console request", "method", r.Method, "path", r.URL.Path, "status", rec.status)
	})
}

// sameOrigin reports whether a browser says the request comes from the
// console's own pages: by Sec-Fetch-Site where it sends it, else by Origin.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		return true
	case "":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser's cross-site request; the form token decides
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// request is a signed-in request: the person's session and clients.
type request struct {
	*http.Request
	session *session
	client  client.Client
	kube    kubernetes.Interface
	csrf    string
}

// signedIn runs h for a signed-in person: with the session of their cookie,
// or with the bearer token an authenticating proxy passed. Others go to
// the sign-in page; a form without its token is refused.
func (s *Server) signedIn(h func(http.ResponseWriter, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var sess *session
		if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && token != "" && s.opts.TrustAuthorizationHeader {
			sess = &session{ID: "proxy:" + token, Token: token, User: "(through the authenticating proxy)", Expires: s.now().Add(time.Minute)}
		} else {
			c, err := r.Cookie(cookieName)
			if err == nil {
				sess, err = s.sess.get(c.Value, s.now())
			}
			if err != nil {
				s.clearCookie(w)
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
		}
		if r.Method == http.MethodPost && !s.sess.validCSRF(sess.ID, r.PostFormValue("csrf")) {
			s.message(w, r, http.StatusForbidden, "Refused", "This form has no valid form token. Reload the page and submit it again.", nil)
			return
		}
		c, kube, err := s.clientsFor(sess.Token)
		if err != nil {
			s.message(w, r, http.StatusInternalServerError, "Error", "The console cannot reach the API server.", nil)
			return
		}
		h(w, &request{Request: r, session: sess, client: c, kube: kube, csrf: s.sess.csrf(sess.ID)})
	}
}

// clientsFor are clients that act with the token, and nothing else.
func (s *Server) clientsFor(token string) (client.Client, kubernetes.Interface, error) {
	cfg := rest.CopyConfig(s.base)
	cfg.BearerToken = token
	cfg.UserAgent = "keywarden-console"
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: s.scheme, Mapper: s.mapper, HTTPClient: httpClient})
	if err != nil {
		return nil, nil, err
	}
	kube, err := kubernetes.NewForConfigAndClient(cfg, httpClient)
	return c, kube, err
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", map[string]any{})
}

// login checks the token with the API server (who does it say the person
// is?) and seals it into the session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimSpace(r.PostFormValue("token"))
	fail := func(msg string) {
		s.render(w, r, http.StatusUnauthorized, "login", map[string]any{"Error": msg})
	}
	if !s.signIns.Allow(limits.Source(limits.Client(r, s.opts.TrustedProxies)), s.now()) {
		w.Header().Set("Retry-After", "10")
		s.render(w, r, http.StatusTooManyRequests, "login", map[string]any{
			"Error": "Too many sign-ins from this address, or to this console at once: wait a few seconds and try again."})
		return
	}
	if token == "" || len(token) > 16384 || strings.ContainsAny(token, " \t\r\n") {
		fail("Paste a Kubernetes bearer token: a ServiceAccount token (kubectl create token NAME) or an OIDC ID token your API server accepts.")
		return
	}
	_, kube, err := s.clientsFor(token)
	if err != nil {
		fail("The console cannot reach the API server.")
		return
	}
	review, err := kube.AuthenticationV1().SelfSubjectReviews().Create(r.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	switch {
	case apierrors.IsUnauthorized(err):
		fail("The API server did not accept this token: it may have expired, or be for another cluster.")
		return
	case err != nil:
		s.opts.Log.Error(err, "Asking the API server who a token is for")
		fail("The API server could not say who this token is for (the console needs Kubernetes 1.28 or later). The console's log has the details.")
		return
	}
	// The session ends with its token, if sooner.
	expires := s.now().Add(s.opts.SessionTTL)
	if exp := tokenExpiry(token); !exp.IsZero() && exp.Before(expires) {
		expires = exp
	}
	sess, err := s.sess.start(token, review.Status.UserInfo.Username, expires, s.now())
	switch {
	case errors.Is(err, errTooManySessions):
		w.Header().Set("Retry-After", "60")
		s.render(w, r, http.StatusServiceUnavailable, "login", map[string]any{
			"Error": "The console holds as many sessions as it may: try again once some have ended (they end when their people sign out, or after the session lifetime)."})
		return
	case err != nil:
		fail("The console could not start a session.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sess.ID, Path: "/", MaxAge: int(expires.Sub(s.now()) / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	s.opts.Log.Info("Signed in to the console", "user", review.Status.UserInfo.Username)
	http.Redirect(w, r, "/keys", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *request) {
	s.sess.end(r.session.ID)
	s.clearCookie(w)
	http.Redirect(w, r.Request, "/login", http.StatusSeeOther)
}

func (s *Server) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// message renders a plain page saying what happened.
func (s *Server) message(w http.ResponseWriter, r *http.Request, status int, title, text string, req *request) {
	data := map[string]any{"Title": title, "Text": text}
	if req != nil {
		data["User"], data["CSRF"] = req.session.User, req.csrf
	}
	s.render(w, r, status, "message", data)
}

// apiError renders an error of the API server in words: which permission
// is missing, or what the API server said.
func (s *Server) apiError(w http.ResponseWriter, r *request, err error) {
	if strings.Contains(err.Error(), "did not accept your credentials") {
		// The token expired or was revoked: the session ends with it.
		s.sess.end(r.session.ID)
		s.clearCookie(w)
		s.render(w, r.Request, http.StatusUnauthorized, "login", map[string]any{"Error": "Your token is no longer accepted (it expired or was revoked): sign in again."})
		return
	}
	status := http.StatusBadGateway
	var api apierrors.APIStatus
	var refused *keyops.Refused
	switch {
	case errors.As(err, &refused):
		// The key's state does not allow it (already revoked, say):
		// asking again cannot help.
		status = http.StatusBadRequest
	case errors.As(err, &api):
		status = int(api.Status().Code)
	case strings.Contains(err.Error(), "you may not"):
		status = http.StatusForbidden
	case strings.Contains(err.Error(), "does not exist"):
		status = http.StatusNotFound
	}
	if status < 400 {
		status = http.StatusBadGateway
	}
	title := "Cannot do that"
	if status == http.StatusNotFound {
		title = "Not found"
	}
	s.message(w, r.Request, status, title, err.Error(), r)
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	t, ok := s.pages[page]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if page == "login" {
		// The sign-in page says how long a session lasts, as configured.
		data["SessionTTL"] = keyview.Approx(s.opts.SessionTTL)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", data); err != nil {
		s.opts.Log.Error(err, "Rendering a console page", "page", page)
	}
}

// Run serves the console on addr until ctx ends.
func (s *Server) Run(ctx context.Context, addr string) error {
	srv := &http.Server{Addr: addr, Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 2 * time.Minute, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	s.opts.Log.Info("Serving the console", "address", addr)
	select {
	case err := <-errc:
		return fmt.Errorf("serving the console: %w", err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}
