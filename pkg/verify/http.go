package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/limits"
)

// MaxBodyBytes bounds a verification request's body.
const MaxBodyBytes = 8 << 10

// Handler serves verification over HTTP:
//
//   - POST /v1/keys/verify: a JSON Request; always 200 with a JSON answer
//     when the request is well-formed, 400 otherwise (503 while the index
//     is not complete).
//   - GET /v1/authz (any method): forward authentication for reverse
//     proxies; the key comes from "Authorization: Bearer" or "X-API-Key",
//     requirements from the query (scope, repeatable; namespace and class,
//     once each, comma-separated lists; role). 200 with X-Keywarden-*
//     headers, 401 or 403 (503 while the index is not complete).
//   - POST /v1/keys/report: {"key": ...}, a key found where it should not
//     be; 202 whatever the key (see report.go), 400 for a bad body, 429
//     past a source's rate.
//
// A verification request must say whose keys it accepts (namespaces or classes), or
// Trust must; one that does not gets 400.
type Handler struct {
	// Index answers the lookups.
	Index *Index
	// Trust is the default for the namespaces, and for the classes, that
	// a request does not name.
	Trust Trust
	// Usage, when set, records the use of keys that opted in.
	Usage *UsageRecorder
	// Suspects, when set, is handed the keys that may be in the wrong
	// hands: a rotated-out key used after its grace (at most once a minute
	// for each key, as the rejection is logged), and a key reported as
	// leaked that verifies when Report is nil. It must not block.
	Suspects func(Suspect)
	// Report, when set, stores the revocation of a reported key's APIKey
	// before the report is answered, within the report budget; an error
	// answers 503 with Retry-After.
	Report func(context.Context, Suspect) error
	// ReportBudget is how long every report's answer takes, and how long
	// Report may take within it: DefaultReportBudget when zero.
	ReportBudget time.Duration

	reportOnce      sync.Once
	reportLimiter   *limits.PerSource
	reportsInFlight atomic.Int64
	// Metrics, when set, counts verifications.
	Metrics *Metrics
	// Log receives a line for a rejected key that was found, with its
	// display prefix and the code, never the key: at most one a key and
	// code every rejectionLogEvery, so that a key holder cannot flood the
	// log (the verifications metric counts every rejection).
	Log logr.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Ready reports whether the index holds every APIKey; until it does,
	// verification answers 503, since a key not indexed yet is not a key
	// that does not exist. Always ready when nil.
	Ready func() bool
	// Staleness, when set, is how long the index has not been known to be
	// current (see Freshness); past MaxStaleness, when that is not zero,
	// verification answers 503.
	Staleness    func() time.Duration
	MaxStaleness time.Duration

	rejections rejectionLog
}

// rejectionLogEvery is how often a rejected key's line is logged at most.
const rejectionLogEvery = time.Minute

// rejectionLog counts the rejections of found keys, by display prefix and
// code, in the current period. Only keys that exist can be counted, so it
// is bounded by the number of keys.
type rejectionLog struct {
	mu    sync.Mutex
	since time.Time
	seen  map[string]int
}

// count records a rejection at now and reports whether to log it: the
// first of its kind in the period. The period's map is dropped when it
// ends.
func (l *rejectionLog) count(kind string, now time.Time) (log bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil || now.Sub(l.since) >= rejectionLogEvery {
		l.since, l.seen = now, map[string]int{}
	}
	l.seen[kind]++
	return l.seen[kind] == 1
}

// Trust is whose keys a verifier accepts when a request does not say: its
// namespaces apply to a request that names none, its classes to one that
// names no class.
type Trust struct {
	// Namespaces and Classes are as in Request.
	Namespaces, Classes []string
	// AnyNamespace accepts keys of every namespace: only for a cluster
	// where everyone who may create an APIKey anywhere is trusted.
	AnyNamespace bool
}

// noTrustMessage answers a request that says nothing of whose keys it
// accepts, to a verifier that has no default.
const noTrustMessage = "say whose keys you accept: name one or more namespaces or classes " +
	`(verify: "namespace", "namespaces", "class", "classes"; authz: the namespace and class query parameters). ` +
	"Anyone who may create an APIKey in some namespace can mint a key with any owner, role and scopes there, " +
	"so the verifier accepts none unless told which (--verifier-trusted-namespaces and --verifier-trusted-classes set a default)"

// repeatedRoleMessage answers an authz request that repeats role.
const repeatedRoleMessage = "role may appear once"

// repeatedTrustMessage answers an authz request that repeats namespace or
// class.
const repeatedTrustMessage = "namespace and class may each appear once: name several as a comma-separated list (namespace=a,b)"

// List splits a comma-separated list, dropping blanks: the namespace and
// class parameters of GET /v1/authz, and the components' list flags.
func List(v string) []string {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// anyNamespaceMessage refuses a request that names "*" as a namespace.
const anyNamespaceMessage = `"*" is not a namespace: trusting the keys of every namespace is the verifier's setting (--verifier-trusted-namespaces=*), not a request's`

// The refusals of a request that names a namespace or class beyond the
// verifier's default.
const (
	outsideNamespacesMessage = "the request names a namespace outside the verifier's trusted namespaces (--verifier-trusted-namespaces): a request may narrow them, never widen them"
	outsideClassesMessage    = "the request names a class outside the verifier's trusted classes (--verifier-trusted-classes): a request may narrow them, never widen them"
)

// refusal is a request refused whatever its key: it asks for keys the
// verifier does not trust. Its code is the one a key outside what the
// request may ask for gets.
type refusal struct {
	code Code
	why  string
}

// trusting completes req with the handler's default trust for what it
// does not name. A request may narrow the default, never widen it: one
// that names a namespace or class outside the default, or "*", is refused
// whatever its key (a client that can add to a proxy's check URL must not
// make its own namespace trusted). problem is what makes a request
// unanswerable: it says whose keys it accepts nowhere, and the verifier
// has no default (the operator's to fix).
func (h *Handler) trusting(req *Request) (problem string, refused *refusal) {
	switch {
	case slices.Contains(req.Namespaces, "*"):
		return "", &refusal{CodeWrongNamespace, anyNamespaceMessage}
	case slices.Contains(req.Classes, "*"):
		return "", &refusal{CodeWrongClass, anyNamespaceMessage}
	}
	// The defaults apply to each dimension the request does not name: a
	// request that narrows by class stays within the default namespaces.
	t := h.Trust
	switch {
	case len(req.Namespaces) == 0:
		req.Namespaces, req.AnyNamespace = t.Namespaces, t.AnyNamespace
	case !t.AnyNamespace && len(t.Namespaces) > 0 && !subset(req.Namespaces, t.Namespaces):
		return "", &refusal{CodeWrongNamespace, outsideNamespacesMessage}
	}
	switch {
	case len(req.Classes) == 0:
		req.Classes = t.Classes
	case len(t.Classes) > 0 && !subset(req.Classes, t.Classes):
		return "", &refusal{CodeWrongClass, outsideClassesMessage}
	}
	if !req.Trusts() {
		return noTrustMessage, nil
	}
	return "", nil
}

// subset reports whether every one of some is among all.
func subset(some, all []string) bool {
	for _, s := range some {
		if !slices.Contains(all, s) {
			return false
		}
	}
	return true
}

// refuse answers a refused request: as a key the request may not accept
// (the verify endpoint's 200 with valid false, authz's 403), with why.
func (h *Handler) refuse(w http.ResponseWriter, endpoint string, status int, r *refusal) {
	if h.Metrics != nil {
		h.Metrics.observe(endpoint, r.code, 0)
	}
	w.Header().Set("X-Keywarden-Code", string(r.code))
	writeAnswer(w, status, &VerifyResponse{Code: r.code, Error: r.why})
}

// notReadyMessage is the answer before the index is complete.
const notReadyMessage = "the key index is not complete yet: retry shortly"

// Answering reports whether the handler answers from the index now, and
// why not: it answers 503 until the index is complete, and while it is
// staler than MaxStaleness.
func (h *Handler) Answering() (bool, string) {
	if h.Ready != nil && !h.Ready() {
		return false, notReadyMessage
	}
	if h.MaxStaleness > 0 && h.Staleness != nil {
		if s := h.Staleness(); s > h.MaxStaleness {
			return false, fmt.Sprintf("the key index has not been known current for %s (the API server is out of reach), more than the %s this verifier allows: retry shortly, or ask another replica",
				s.Round(time.Second), h.MaxStaleness)
		}
	}
	return true, ""
}

// unavailable answers a request that the index cannot answer now.
func (h *Handler) unavailable(w http.ResponseWriter, endpoint, why string) {
	w.Header().Set("Retry-After", "1")
	h.fail(w, endpoint, http.StatusServiceUnavailable, errorResponse{why})
}

// fail answers a request the endpoint could not answer (a malformed one,
// or one the verifier cannot answer now), and counts it.
func (h *Handler) fail(w http.ResponseWriter, endpoint string, status int, body errorResponse) {
	if h.Metrics != nil {
		h.Metrics.errors.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	}
	writeJSON(w, status, body)
}

// Routes returns a mux with the handler's endpoints.
func (h *Handler) Routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/keys/verify", h.serveVerify)
	mux.HandleFunc("/v1/authz", h.serveAuthz)
	mux.HandleFunc("/v1/keys/report", h.serveReport)
	return mux
}

// verifyRequest is the JSON body of POST /v1/keys/verify.
type verifyRequest struct {
	Key        string   `json:"key"`
	Scopes     []string `json:"scopes,omitempty"`
	Role       string   `json:"role,omitempty"`
	Namespace  string   `json:"namespace,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
	Class      string   `json:"class,omitempty"`
	Classes    []string `json:"classes,omitempty"`
}

// request is the Request of a verifyRequest: the one-value fields join
// the lists.
func (v *verifyRequest) request() Request {
	r := Request{Key: v.Key, Scopes: v.Scopes, Role: v.Role, Namespaces: v.Namespaces, Classes: v.Classes}
	if v.Namespace != "" {
		r.Namespaces = append(r.Namespaces, v.Namespace)
	}
	if v.Class != "" {
		r.Classes = append(r.Classes, v.Class)
	}
	return r
}

// VerifyResponse is the JSON answer of POST /v1/keys/verify.
type VerifyResponse struct {
	Valid     bool       `json:"valid"`
	Code      Code       `json:"code,omitempty"`
	Namespace string     `json:"namespace,omitempty"`
	Name      string     `json:"name,omitempty"`
	Class     string     `json:"class,omitempty"`
	Owner     string     `json:"owner,omitempty"`
	Role      string     `json:"role,omitempty"`
	Scopes    []string   `json:"scopes,omitempty"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	KeyPrefix string     `json:"keyPrefix,omitempty"`
	// Previous is set for a key a rotation replaced, which verifies until
	// ValidUntil: tell its holder to pick up the current key.
	Previous   bool       `json:"previous,omitempty"`
	ValidUntil *time.Time `json:"validUntil,omitempty"`
	// Error says why a request was refused whatever its key (it asked
	// for keys the verifier does not trust, or presented two keys).
	Error string `json:"error,omitempty"`
}

type errorResponse struct {
	Error string `json:"error"`
}

func (h *Handler) serveVerify(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, "verify", http.StatusMethodNotAllowed, errorResponse{"use POST"})
		return
	}
	req, problem := decodeVerifyRequest(r.Body)
	if problem != "" {
		h.fail(w, "verify", http.StatusBadRequest, errorResponse{problem})
		return
	}
	if req.Key == "" {
		h.fail(w, "verify", http.StatusBadRequest, errorResponse{`"key" is required`})
		return
	}
	vreq := req.request()
	problem, refused := h.trusting(&vreq)
	switch {
	case problem != "":
		h.fail(w, "verify", http.StatusBadRequest, errorResponse{problem})
		return
	case refused != nil:
		h.refuse(w, "verify", http.StatusOK, refused)
		return
	}
	if ok, why := h.Answering(); !ok {
		h.unavailable(w, "verify", why)
		return
	}
	res := h.verify("verify", vreq)
	if !res.Valid {
		writeAnswer(w, http.StatusOK, &VerifyResponse{Code: res.Code})
		return
	}
	// A valid key's answer was written when the key was indexed.
	answerHeader(w, http.StatusOK)
	_, _ = io.WriteString(w, res.answer)
}

// decodeError describes a body that could not be decoded, without quoting
// it: the body may hold a key.
func decodeError(err error) string {
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return "the body is larger than 8 KiB"
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the body is not a JSON object"
	case errors.As(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "the body is not a valid request"
}

// serveAuthz answers a reverse proxy's check. What a client can change
// (its headers, and what a proxy lets it add to the check's query) is
// answered 401 or 403 with its code, as a refused key is: a proxy passes
// those on, while it takes any other answer for a failure of the check
// itself (nginx's auth_request answers 500). 400 is for what only the
// operator can fix: a check that says whose keys it accepts nowhere.
func (h *Handler) serveAuthz(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key, ambiguous := presentedKey(r)
	if ambiguous != "" {
		if h.Metrics != nil {
			h.Metrics.observe("authz", CodeMalformed, 0)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="keywarden", error="invalid_request"`)
		w.Header().Set("X-Keywarden-Code", string(CodeMalformed))
		writeAnswer(w, http.StatusUnauthorized, &VerifyResponse{Code: CodeMalformed, Error: ambiguous})
		return
	}
	// A proxy that builds the query from a prefix and the client's own
	// path would let the client add a namespace or a class: each may
	// appear once (several as a comma-separated list).
	if len(q["namespace"]) > 1 {
		h.refuse(w, "authz", http.StatusForbidden, &refusal{CodeWrongNamespace, repeatedTrustMessage})
		return
	}
	if len(q["class"]) > 1 {
		h.refuse(w, "authz", http.StatusForbidden, &refusal{CodeWrongClass, repeatedTrustMessage})
		return
	}
	if len(q["role"]) > 1 {
		// Which one the proxy meant is unknown: a client may have added
		// the other.
		h.refuse(w, "authz", http.StatusForbidden, &refusal{CodeWrongRole, repeatedRoleMessage})
		return
	}
	req := Request{Key: key, Scopes: q["scope"], Role: q.Get("role"), Namespaces: List(q.Get("namespace")), Classes: List(q.Get("class"))}
	problem, refused := h.trusting(&req)
	if problem != "" {
		h.fail(w, "authz", http.StatusBadRequest, errorResponse{problem})
		return
	}
	if req.Key == "" {
		unauthorized(w, "")
		return
	}
	if refused != nil {
		h.refuse(w, "authz", http.StatusForbidden, refused)
		return
	}
	if ok, why := h.Answering(); !ok {
		h.unavailable(w, "authz", why)
		return
	}
	res := h.verify("authz", req)
	switch res.Code {
	case "":
		hdr := w.Header()
		hdr.Set("X-Keywarden-Owner", res.Owner)
		hdr.Set("X-Keywarden-Role", res.Role)
		hdr.Set("X-Keywarden-Scopes", strings.Join(res.Scopes, ","))
		hdr.Set("X-Keywarden-Key", res.Namespace+"/"+res.Name)
		if res.Class != "" {
			hdr.Set("X-Keywarden-Class", res.Class)
		}
		if res.Previous {
			// A key a rotation replaced, in its grace period.
			hdr.Set("X-Keywarden-Previous-Key-Valid-Until", res.ValidUntil.UTC().Format(time.RFC3339))
		}
		w.WriteHeader(http.StatusOK)
	case CodeInsufficientScope, CodeWrongRole, CodeWrongNamespace, CodeWrongClass:
		w.Header().Set("X-Keywarden-Code", string(res.Code))
		writeAnswer(w, http.StatusForbidden, &VerifyResponse{Code: res.Code})
	default:
		unauthorized(w, res.Code)
	}
}

// presentedKey takes the key from "Authorization: Bearer <key>" or from
// "X-API-Key". A request that presents more than one key (either header
// twice, or both with different keys) is ambiguous: which one a proxy in
// front passed on is unknown, so none is taken, and ambiguous says why.
func presentedKey(r *http.Request) (key, ambiguous string) {
	auths, apiKeys := r.Header.Values("Authorization"), r.Header.Values("X-API-Key")
	if len(auths) > 1 || len(apiKeys) > 1 {
		return "", "more than one Authorization or X-API-Key header: present one key, once"
	}
	var bearer string
	if len(auths) == 1 {
		scheme, token, ok := strings.Cut(auths[0], " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			bearer = strings.TrimSpace(token)
		}
	}
	var apiKey string
	if len(apiKeys) == 1 {
		apiKey = strings.TrimSpace(apiKeys[0])
	}
	if bearer != "" && apiKey != "" && bearer != apiKey {
		return "", "Authorization and X-API-Key present different keys: present one key"
	}
	if bearer != "" {
		return bearer, ""
	}
	return apiKey, ""
}

func unauthorized(w http.ResponseWriter, code Code) {
	if code == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keywarden"`)
		writeJSON(w, http.StatusUnauthorized, errorResponse{"no key presented: use Authorization: Bearer <key> or X-API-Key"})
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="keywarden", error="invalid_token"`)
	w.Header().Set("X-Keywarden-Code", string(code))
	writeAnswer(w, http.StatusUnauthorized, &VerifyResponse{Code: code})
}

// now is the handler's time.
func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// verify runs one verification and records its metrics, log line and use.
func (h *Handler) verify(endpoint string, req Request) Result {
	now := h.now
	start := time.Now()
	res := h.Index.Verify(req, now())
	if h.Metrics != nil {
		h.Metrics.observe(endpoint, res.Code, time.Since(start))
	}
	switch {
	case res.Valid && res.TrackLastUsed && h.Usage != nil:
		h.Usage.Record(res.Namespace, res.Name, now())
	case !res.Valid && res.KeyPrefix != "":
		if h.rejections.count(res.KeyPrefix+"/"+string(res.Code), now()) {
			h.Log.Info("Key rejected; later rejections of this key for this reason are not logged for a minute",
				"keyPrefix", res.KeyPrefix, "code", res.Code, "endpoint", endpoint)
			if res.Code == CodeRotated && h.Suspects != nil {
				h.Suspects(Suspect{APIKey: types.NamespacedName{Namespace: res.Namespace, Name: res.Name},
					KeyHash: keys.Hash(req.Key), KeyPrefix: res.KeyPrefix})
			}
		}
	case !res.Valid:
		h.Log.V(1).Info("Key rejected", "code", res.Code, "endpoint", endpoint)
	}
	return res
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Metrics are the verifier's Prometheus metrics.
type Metrics struct {
	verifications *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	reports       *prometheus.CounterVec
	errors        *prometheus.CounterVec
}

// NewMetrics creates the verifier's metrics and registers them, with a gauge
// of the keys in the index.
func NewMetrics(reg prometheus.Registerer, ix *Index) (*Metrics, error) {
	m := &Metrics{
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keywarden_verifications_total",
			Help: "Key verifications by endpoint and result: VALID or the code of the rejection.",
		}, []string{"endpoint", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keywarden_verification_duration_seconds",
			Help:    "Time to verify one key, excluding the HTTP transport.",
			Buckets: []float64{1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2},
		}, []string{"endpoint"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keywarden_key_reports_total",
			Help: "Keys reported as leaked to POST /v1/keys/report, by result: revoked (a key that verified, its revocation stored), failed (not stored: answered 503) or ignored.",
		}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keywarden_verifier_errors_total",
			Help: "Requests the verifier answered with an error, by endpoint and HTTP status: 400 (malformed), 405, 429 (reports over their rate) and 503 (not ready, or its index stale).",
		}, []string{"endpoint", "code"}),
	}
	indexed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keywarden_verifier_keys_indexed",
		Help: "Keys in the verifier's index.",
	}, func() float64 { return float64(ix.Len()) })
	for _, c := range []prometheus.Collector{m.verifications, m.latency, m.reports, m.errors, indexed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observe(endpoint string, code Code, d time.Duration) {
	result := string(code)
	if code == "" {
		result = "VALID"
	}
	m.verifications.WithLabelValues(endpoint, result).Inc()
	m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}
