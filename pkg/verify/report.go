package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"

	"keywarden.dev/keywarden/internal/keys"
)

// A leaked key is reported to POST /v1/keys/report, as GitHub's token
// revocation API takes tokens found in public: holding the key is the
// proof. A key that verifies now (the current key of an APIKey, a
// rotation's next key, or a previous key in its grace) revokes its APIKey,
// irreversibly; any other key, well-formed or not, changes nothing. Every
// well-formed report gets the same 202, given before the revocation is
// written, so the answer does not say whether the key existed.

// reportRequest is the JSON body of POST /v1/keys/report.
type reportRequest struct {
	Key string `json:"key"`
}

// reportAnswer is the answer to every well-formed report.
const reportAnswer = `{"received":true}` + "\n"

// Suspect is a key the verifier saw that may be in the wrong hands: one
// reported as leaked, or a rotated-out key used after its grace. The
// handler hands it to Suspects, which reports it on its APIKey and revokes
// the APIKey when it must, in the background: neither a report nor a
// verification waits for an API write.
type Suspect struct {
	APIKey types.NamespacedName
	// KeyHash and KeyPrefix are the key's (never the key).
	KeyHash, KeyPrefix string
	// Reported is set for a reported key; otherwise a rotated-out key
	// was used.
	Reported bool
}

// ReportRate and ReportBurst bound the reports one source (the client's
// address) may make. A report costs a lookup, as a verification does; only
// a key that verifies causes a write, once for its APIKey however often
// it is reported.
const (
	ReportRate  = 5
	ReportBurst = 20
	// reportSources bounds the sources followed at once; past it the
	// oldest are forgotten.
	reportSources = 4096
)

// sourceLimits are the per-source rate limits of reports.
type sourceLimits struct {
	mu sync.Mutex
	m  map[string]*sourceLimit
}

type sourceLimit struct {
	l    *rate.Limiter
	seen time.Time
}

func (s *sourceLimits) allow(source string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*sourceLimit{}
	}
	sl, ok := s.m[source]
	if !ok {
		if len(s.m) >= reportSources {
			s.forgetOldest()
		}
		sl = &sourceLimit{l: rate.NewLimiter(ReportRate, ReportBurst)}
		s.m[source] = sl
	}
	sl.seen = now
	return sl.l.AllowN(now, 1)
}

func (s *sourceLimits) forgetOldest() {
	var oldest string
	var at time.Time
	for k, v := range s.m {
		if oldest == "" || v.seen.Before(at) {
			oldest, at = k, v.seen
		}
	}
	delete(s.m, oldest)
}

// source is the address a request came from, without its port.
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, "report", http.StatusMethodNotAllowed, errorResponse{"use POST"})
		return
	}
	if !h.reportLimits.allow(source(r), h.now()) {
		w.Header().Set("Retry-After", strconv.Itoa(1+ReportBurst/ReportRate))
		h.fail(w, "report", http.StatusTooManyRequests, errorResponse{"too many reports from this address; try again later"})
		return
	}
	body, err := readAll(r.Body, nil, MaxBodyBytes)
	defer clear(body)
	if err != nil {
		h.fail(w, "report", http.StatusBadRequest, errorResponse{decodeError(err)})
		return
	}
	var req reportRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.fail(w, "report", http.StatusBadRequest, errorResponse{decodeError(err)})
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		h.fail(w, "report", http.StatusBadRequest, errorResponse{"the body must hold exactly one JSON object"})
		return
	}
	if req.Key == "" {
		h.fail(w, "report", http.StatusBadRequest, errorResponse{`"key" is required`})
		return
	}
	if ok, why := h.Answering(); !ok {
		h.unavailable(w, "report", why)
		return
	}
	res := h.Index.Verify(Request{Key: req.Key, AnyNamespace: true}, h.now())
	if h.Metrics != nil {
		h.Metrics.reports.WithLabelValues(reportResult(res)).Inc()
	}
	if res.Valid && h.Suspects != nil {
		h.Suspects(Suspect{APIKey: types.NamespacedName{Namespace: res.Namespace, Name: res.Name},
			KeyHash: keys.Hash(req.Key), KeyPrefix: res.KeyPrefix, Reported: true})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, reportAnswer)
}

// reportResult is the metric's label of a report: whether it named a key
// that verifies, never which.
func reportResult(res Result) string {
	if res.Valid {
		return "revoked"
	}
	return "ignored"
}
