package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"

	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/internal/limits"
)

// A leaked key is reported to POST /v1/keys/report, as GitHub's token
// revocation API takes tokens found in public: holding the key is the
// proof. A key that verifies now (the current key of an APIKey, a
// rotation's next key, or a previous key in its grace) revokes its APIKey,
// irreversibly; any other key, well-formed or not, changes nothing. A 202
// means the revocation is stored (Handler.Report writes it before the
// answer); when it cannot be, the answer is 503 with Retry-After, and the
// reporter tries again. Every answer takes the same time, the report
// budget, found or not, so that neither its content nor its timing says
// whether the key existed.

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

// DefaultReportBudget is how long a report's answer takes once its body
// is read, and how long the revocation's write may take within it;
// MaxReportBudget leaves room within the server's write timeout.
const (
	DefaultReportBudget = 2 * time.Second
	MaxReportBudget     = 5 * time.Second
)

// ReportRate and ReportBurst bound the reports one source (the client's
// address; for IPv6 its /64, which one subscriber commonly holds whole)
// may make; ReportGlobalRate and ReportGlobalBurst bound all reports
// together, and MaxReportsInFlight how many are answered at once (each
// holds its connection for the report budget). A report costs a lookup,
// as a verification does; only a key that verifies causes a write, once
// for its APIKey however often it is reported. Verifications have limits
// of their own: no flood of reports holds them back.
const (
	ReportRate         = 5
	ReportBurst        = 20
	ReportGlobalRate   = 50
	ReportGlobalBurst  = 200
	MaxReportsInFlight = 256
	// reportSources bounds the sources followed at once; past it the one
	// seen least recently is forgotten.
	reportSources = 4096
)

// newReportLimits are the rate limits of reports: one for each source,
// and one for all.
func newReportLimits() *limits.PerSource {
	return &limits.PerSource{Rate: ReportRate, Burst: ReportBurst, Sources: reportSources,
		Global: rate.NewLimiter(ReportGlobalRate, ReportGlobalBurst)}
}

// reportLimits are the handler's limits of reports.
func (h *Handler) reportLimits() *limits.PerSource {
	h.reportOnce.Do(func() {
		if h.reportLimiter == nil {
			h.reportLimiter = newReportLimits()
		}
	})
	return h.reportLimiter
}

func (h *Handler) reportBudget() time.Duration {
	if h.ReportBudget > 0 {
		return h.ReportBudget
	}
	return DefaultReportBudget
}

func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, "report", http.StatusMethodNotAllowed, errorResponse{"use POST"})
		return
	}
	if !h.reportLimits().Allow(limits.Source(r.RemoteAddr), h.now()) {
		w.Header().Set("Retry-After", strconv.Itoa(1+ReportBurst/ReportRate))
		h.fail(w, "report", http.StatusTooManyRequests, errorResponse{"too many reports from this address or in all; try again later"})
		return
	}
	if h.reportsInFlight.Add(1) > MaxReportsInFlight {
		h.reportsInFlight.Add(-1)
		w.Header().Set("Retry-After", strconv.Itoa(1+ReportBurst/ReportRate))
		h.fail(w, "report", http.StatusTooManyRequests, errorResponse{"too many reports at once; try again later"})
		return
	}
	defer h.reportsInFlight.Add(-1)
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
	// The budget runs from here, once the body is read: a reporter that
	// sends it slowly cannot eat into the write's time.
	start, budget := time.Now(), h.reportBudget()
	res := h.lookUpReported(r.Context(), req.Key, start.Add(budget/2))
	var stored error
	if res.Valid {
		s := Suspect{APIKey: types.NamespacedName{Namespace: res.Namespace, Name: res.Name},
			KeyHash: keys.Hash(req.Key), KeyPrefix: res.KeyPrefix, Reported: true}
		switch {
		case h.Report != nil:
			// The write goes on if the reporter hangs up: it was
			// told nothing yet, and will report again.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), budget-time.Since(start))
			stored = h.Report(ctx, s)
			cancel()
		case h.Suspects != nil:
			h.Suspects(s)
		}
	}
	if h.Metrics != nil {
		h.Metrics.reports.WithLabelValues(reportResult(res, stored)).Inc()
	}
	// Every answer takes the budget, whether a write was made or not.
	if wait := budget - time.Since(start); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if stored != nil {
		h.Log.Error(stored, "A reported key's revocation could not be stored; answered 503 for the reporter to try again",
			"apiKey", res.Namespace+"/"+res.Name, "keyPrefix", res.KeyPrefix)
		w.Header().Set("Retry-After", strconv.Itoa(reportRetryAfter))
		h.fail(w, "report", http.StatusServiceUnavailable, errorResponse{"the report could not be recorded now; send it again"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, reportAnswer)
}

// lookUpReported finds a reported key in the index. A key the index does
// not hold may be one issued or rotated a moment ago, whose APIKey's
// change has not reached this replica yet: it is looked for again up to
// the given time (half the report's budget, which the answer waits out
// anyway), so that such a report is not ignored. (A replica further behind than its
// staleness bound does not answer reports at all.)
func (h *Handler) lookUpReported(ctx context.Context, key string, until time.Time) Result {
	for {
		res := h.Index.Verify(Request{Key: key, AnyNamespace: true}, h.now())
		if res.Valid || res.Code != CodeNotFound || !time.Now().Add(reportLookAgain).Before(until) {
			return res
		}
		t := time.NewTimer(reportLookAgain)
		select {
		case <-ctx.Done():
			t.Stop()
			return res
		case <-t.C:
		}
	}
}

// reportLookAgain is how often a reported key that the index does not
// hold is looked for again.
const reportLookAgain = 50 * time.Millisecond

// reportRetryAfter is the Retry-After, in seconds, of a report whose
// revocation could not be stored.
const reportRetryAfter = 5

// reportResult is the metric's label of a report: whether it named a key
// that verifies (and its revocation was stored), never which.
func reportResult(res Result, stored error) string {
	switch {
	case !res.Valid:
		return "ignored"
	case stored != nil:
		return "failed"
	}
	return "revoked"
}
