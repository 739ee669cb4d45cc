package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
)

// A leaked key is reported to POST /v1/keys/report, as GitHub's token
// revocation API takes tokens found in public: holding the key is the
// proof. A key that verifies now (the current key of an APIKey, a
// rotation's next key, or a previous key in its grace) revokes its APIKey,
// irreversibly; any other key, well-formed or not, changes nothing. The
// answer is the same 202 either way, given before the revocation is
// written (the lookup is as quick for a known key as for an unknown one),
// so the endpoint tells nobody whether a key exists.

// reportRequest is the JSON body of POST /v1/keys/report.
type reportRequest struct {
	Key string `json:"key"`
}

// reportAnswer is the answer to every well-formed report.
const reportAnswer = `{"received":true}` + "\n"

// Reported revokes the APIKey of a reported key, in the background: the
// report is answered without waiting for it.
type Reported func(apiKey types.NamespacedName, keyPrefix string)

// reports bounds the work reports cause: a rate for all reporters
// together, and a queue of revocations to write that never blocks the
// answer (a report that finds the queue full is answered alike, and the
// same key reported again later revokes it).
type reports struct {
	once    sync.Mutex
	limiter *rate.Limiter
	queue   chan reported
}

type reported struct {
	apiKey    types.NamespacedName
	keyPrefix string
}

// ReportRate and ReportBurst bound the reports a verifier accepts, all
// reporters together.
const (
	ReportRate  = 5
	ReportBurst = 20
)

func (h *Handler) reportsOf() *reports {
	h.reports.once.Lock()
	defer h.reports.once.Unlock()
	if h.reports.limiter == nil {
		h.reports.limiter = rate.NewLimiter(ReportRate, ReportBurst)
		h.reports.queue = make(chan reported, 64)
	}
	return &h.reports
}

// RunReports writes the revocations of reported keys through revoke until
// stop is closed.
func (h *Handler) RunReports(stop <-chan struct{}, revoke Reported) {
	q := h.reportsOf().queue
	for {
		select {
		case <-stop:
			return
		case r := <-q:
			revoke(r.apiKey, r.keyPrefix)
		}
	}
}

func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse{"use POST"})
		return
	}
	rs := h.reportsOf()
	if !rs.limiter.Allow() {
		w.Header().Set("Retry-After", strconv.Itoa(1+ReportBurst/ReportRate))
		writeJSON(w, http.StatusTooManyRequests, errorResponse{"too many reports; try again later"})
		return
	}
	body, err := readAll(r.Body, nil, MaxBodyBytes)
	defer clear(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{decodeError(err)})
		return
	}
	var req reportRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{decodeError(err)})
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, errorResponse{"the body must hold exactly one JSON object"})
		return
	}
	if req.Key == "" {
		writeJSON(w, http.StatusBadRequest, errorResponse{`"key" is required`})
		return
	}
	if ok, why := h.ready(); !ok {
		unavailable(w, why)
		return
	}
	now := h.now()
	res := h.Index.Verify(Request{Key: req.Key, AnyNamespace: true}, now)
	if h.Metrics != nil {
		h.Metrics.reports.WithLabelValues(reportResult(res)).Inc()
	}
	if res.Valid {
		select {
		case rs.queue <- reported{types.NamespacedName{Namespace: res.Namespace, Name: res.Name}, res.KeyPrefix}:
		default:
		}
		h.Log.Info("A key was reported as leaked; its APIKey is being revoked", "apiKey", res.Namespace+"/"+res.Name, "keyPrefix", res.KeyPrefix)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, reportAnswer)
}

// reportResult is the metric's label of a report: whether it revoked a
// key, never which.
func reportResult(res Result) string {
	if res.Valid {
		return "revoked"
	}
	return "ignored"
}
