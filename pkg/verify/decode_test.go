package verify

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

var requestBodies = []string{
	`{"key":"kw_abc","namespace":"shop"}`,
	` { "key" : "kw_abc" , "namespaces" : [ "a" , "b" ] , "classes":["payments"], "class":"c", "role":"admin", "scopes":["x:y","z"] } ` + "\n",
	`{}`, `{"key":""}`, `{"scopes":[]}`, `{"scopes":[],"scopes":["a"]}`, `{"key":"a","key":"b"}`, `{"namespaces":["a"],"namespaces":[]}`,
	// encoding/json's cases: the scanner leaves them to it.
	`{"KEY":"kw_abc"}`, `{"Key":"a"}`, `{"key":"a\"b"}`, `{"key":"\u006bw"}`, `{"key":"é"}`, `{"key":"bad \xff"}`, `{"key":"tab	"}`,
	`{"key":null}`, `{"scopes":null}`, `{"key":1}`, `{"scopes":"a"}`, `{"scopes":[1]}`, `{"other":"x"}`,
	// Not one object.
	``, ` `, `{`, `}`, `[]`, `"key"`, `{"key":"a"}{}`, `{"key":"a"} x`, `{"key":"a",}`, `{,}`, `{"key" "a"}`, `{"key":"a"`,
	`{"scopes":["a",]}`, `{"scopes":["a"`, `{"key":"a`, `nul`, `{"key":"a"}` + strings.Repeat(" ", 100),
}

// TestDecodeVerifyRequest: every body decodes, or is refused, exactly as
// encoding/json alone decoded or refused it.
func TestDecodeVerifyRequest(t *testing.T) {
	scanned := 0
	for _, body := range requestBodies {
		got, gotProblem := decodeVerifyRequest(strings.NewReader(body))
		want, wantProblem := decodeJSON([]byte(body))
		if gotProblem != wantProblem || (wantProblem == "" && !reflect.DeepEqual(got, want)) {
			t.Errorf("%q: got %+v %q, want %+v %q", body, got, gotProblem, want, wantProblem)
		}
		if _, ok := scanVerifyRequest([]byte(body)); ok {
			scanned++
		}
	}
	if scanned != 9 {
		t.Errorf("the scanner took %d of the bodies, want the 9 of the usual shape", scanned)
	}
}

// TestDecodeVerifyRequestTooLarge: a body past the bound is refused as
// before, whatever it holds.
func TestDecodeVerifyRequestTooLarge(t *testing.T) {
	body := `{"key":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	_, problem := decodeVerifyRequest(strings.NewReader(body))
	if problem != "the body is larger than 8 KiB" {
		t.Fatalf("problem %q", problem)
	}
	atLimit := `{"key":"kw_abc"}` + strings.Repeat(" ", MaxBodyBytes-len(`{"key":"kw_abc"}`))
	if req, problem := decodeVerifyRequest(strings.NewReader(atLimit)); problem != "" || req.Key != "kw_abc" {
		t.Fatalf("a body of exactly %d bytes: %+v %q", MaxBodyBytes, req, problem)
	}
	if _, problem := decodeVerifyRequest(strings.NewReader(atLimit + " ")); problem != "the body is larger than 8 KiB" {
		t.Fatalf("a body one byte over: problem %q", problem)
	}
}

// FuzzScanVerifyRequest: whatever the scanner accepts, encoding/json
// decodes to the same request.
func FuzzScanVerifyRequest(f *testing.F) {
	for _, body := range requestBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := scanVerifyRequest(body)
		if !ok {
			return
		}
		want, problem := decodeJSON(body)
		if problem != "" || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: scanned %+v, encoding/json: %+v %q", body, got, want, problem)
		}
	})
}

// headerOnly is a ResponseWriter that keeps nothing but its header. Like
// net/http's, it writes strings without a copy.
type headerOnly struct{ h http.Header }

func (w *headerOnly) Header() http.Header               { return w.h }
func (w *headerOnly) Write(b []byte) (int, error)       { return len(b), nil }
func (w *headerOnly) WriteString(s string) (int, error) { return len(s), nil }
func (w *headerOnly) WriteHeader(int)                   {}

// TestVerifyAllocations: answering a verification of the usual shape
// allocates the key and namespace it reads and the list of namespaces,
// and nothing else (the body's buffer and the answer's are reused): the
// allocations of a request are most of the collector's work, which the
// verifier's throughput against a trivial handler pays (make bench).
func TestVerifyAllocations(t *testing.T) {
	raw, k := issued(t, "ns", "checkout", nil)
	ix := NewIndex()
	ix.Upsert(k)
	h := (&Handler{Index: ix, Log: logr.Discard(), Now: func() time.Time { return t0 }}).Routes()
	body := []byte(`{"key":"` + raw + `","namespace":"ns"}`)
	rd := bytes.NewReader(body)
	req := httptest.NewRequest(http.MethodPost, "/v1/keys/verify", rd)
	w := &headerOnly{h: http.Header{}}
	allocs := testing.AllocsPerRun(1000, func() {
		rd.Reset(body)
		h.ServeHTTP(w, req)
	})
	if allocs > 3 {
		t.Fatalf("a verification allocates %.1f times, want at most 3", allocs)
	}
}

// TestBodyBufferCleared: the buffer a body was read into goes back to its
// pool without the key.
func TestBodyBufferCleared(t *testing.T) {
	const key = "kw_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
	for i, body := range []string{`{"key":"` + key + `"}`, `{"KEY":"` + key + `"}`, `{"key":"` + key + `",}`} {
		_, _ = decodeVerifyRequest(strings.NewReader(body))
		bp := bodies.Get().(*[]byte)
		if strings.Contains(string((*bp)[:cap(*bp)]), key[:20]) {
			t.Fatalf("after body %d the pooled buffer still holds the key", i)
		}
		bodies.Put(bp)
	}
}
