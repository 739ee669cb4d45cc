package verify

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/go-logr/logr"
)

// benchKeys is how many keys the benchmarks index.
const benchKeys = 100_000

var (
	benchOnce  sync.Once
	benchIndex *Index
	benchRaw   []string
)

func benchSetup(b *testing.B) {
	benchOnce.Do(func() {
		benchIndex = NewIndex()
		for i := range benchKeys {
			raw, k := issued(b, "ns", "key-"+strconv.Itoa(i), nil)
			benchIndex.Upsert(k)
			if i%1000 == 0 {
				benchRaw = append(benchRaw, raw)
			}
		}
	})
}

// BenchmarkVerify is one in-process verification against an index of
// 100,000 keys.
func BenchmarkVerify(b *testing.B) {
	benchSetup(b)
	req := Request{Scopes: []string{"logs:read"}, Namespaces: []string{"ns"}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.Key = benchRaw[i%len(benchRaw)]
		if !benchIndex.Verify(req, t0).Valid {
			b.Fatal("not valid")
		}
		i++
	}
}

// BenchmarkSHA256AndLookup is the floor BenchmarkVerify is measured
// against: the SHA-256 of a key, read without a copy, and one lookup in the
// same map.
func BenchmarkSHA256AndLookup(b *testing.B) {
	benchSetup(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		raw := benchRaw[i%len(benchRaw)]
		if e, _ := benchIndex.lookup(new(sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw))))); e == nil {
			b.Fatal("not found")
		}
		i++
	}
}

// BenchmarkVerifyHTTP is POST /v1/keys/verify over loopback with keep-alive
// clients, in parallel.
func BenchmarkVerifyHTTP(b *testing.B) {
	benchSetup(b)
	srv := httptest.NewServer((&Handler{Index: benchIndex, Log: logr.Discard()}).Routes())
	defer srv.Close()
	benchHTTP(b, srv.URL+"/v1/keys/verify", func(i int) []byte {
		return []byte(`{"key":"` + benchRaw[i%len(benchRaw)] + `","namespace":"ns"}`)
	})
}

// BenchmarkTrivialHTTP is the floor BenchmarkVerifyHTTP is measured
// against: a handler that only answers 200 with a small JSON body, served
// and called the same way.
func BenchmarkTrivialHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"valid":true}` + "\n"))
	}))
	defer srv.Close()
	benchHTTP(b, srv.URL, func(int) []byte { return []byte(`{"key":"x","namespace":"ns"}`) })
}

// validPrefix starts every answer for a valid key.
var validPrefix = []byte(`{"valid":true`)

// httpClients is how many keep-alive clients per CPU the HTTP benchmarks
// run, enough to keep the server saturated.
const httpClients = 8

// benchHTTP posts bodies to url from parallel keep-alive clients and
// reports, besides the time per request, the 99th percentile latency.
func benchHTTP(b *testing.B, url string, body func(int) []byte) {
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var (
		mu  sync.Mutex
		all []time.Duration
	)
	b.ReportAllocs()
	b.SetParallelism(httpClients)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		var buf bytes.Buffer
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			start := time.Now()
			resp, err := c.Post(url, "application/json", bytes.NewReader(body(i)))
			if err != nil {
				b.Error(err)
				return
			}
			buf.Reset()
			_, _ = buf.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			lat = append(lat, time.Since(start))
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			// A verifier that refused every key would answer faster
			// than one that accepts them: count only acceptances.
			if !bytes.HasPrefix(buf.Bytes(), validPrefix) {
				b.Errorf("answer %.40q, want a valid key", buf.Bytes())
				return
			}
			i++
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	if len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}
