package keymetrics

import (
	"bufio"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// family is one of the per-key metrics: a gauge labelled with the key's
// namespace, name and class (and phase), whose value a key has or not.
type family struct {
	name, help string
	phase      bool
	value      func(*row) (float64, bool)
}

var perKeyFamilies = []family{{
	name:  "keywarden_apikey_phase",
	help:  "1 for each APIKey, labelled with its phase.",
	phase: true,
	value: func(*row) (float64, bool) { return 1, true },
}, {
	name:  "keywarden_apikey_issued_timestamp_seconds",
	help:  "When each issued APIKey was first issued, in Unix seconds.",
	value: func(r *row) (float64, bool) { return r.issued, r.issued != 0 },
}, {
	name:  "keywarden_apikey_expiration_timestamp_seconds",
	help:  "When each APIKey expires, in Unix seconds; absent for a key that never expires or is not issued yet.",
	value: func(r *row) (float64, bool) { return r.expires, r.expires != 0 },
}, {
	name:  "keywarden_apikey_last_used_timestamp_seconds",
	help:  "When each APIKey with trackLastUsed was last used, in Unix seconds; 0 for one never used. Absent for keys not tracked.",
	value: func(r *row) (float64, bool) { return r.lastUsed, r.tracked },
}}

// maxScrapes is how many scrapes are answered at once.
const maxScrapes = 2

// row is what a scrape writes of one key, copied from the collector so
// that the lock is not held while a client reads.
type row struct {
	namespace, name, class, phase string
	issued, expires, lastUsed     float64
	tracked                       bool
}

// rows copies what the per-key series need of each key; none when they
// are off.
func (c *Collector) rows() []row {
	if !c.PerKey {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	rows := make([]row, 0, len(c.keys))
	for nn, s := range c.keys {
		rows = append(rows, row{
			namespace: nn.Namespace, name: nn.Name, class: c.classOf(&s), phase: s.phase,
			issued: s.issued, expires: s.expires, lastUsed: s.lastUsed, tracked: s.tracked,
		})
	}
	return rows
}

// Handler answers a scrape: the series of the gatherer (the registry the
// collector is registered with, which holds the counts) and then, when
// PerKey, the per-key series, in Prometheus' text format, compressed when
// the client accepts gzip.
//
// The per-key series are written straight from what the collector keeps,
// as kube-state-metrics writes its own, and in no particular order. Built
// as the client library's metrics, each would be an object made, checked
// and held until the whole scrape is encoded: some 190 MiB at once for
// 100,000 keys, in a controller that needs about 260 MiB for the keys
// themselves.
//
// At most maxScrapes are answered at once (each copies a row of every
// key); the others wait for their turn, or their request's end.
func (c *Collector) Handler(g prometheus.Gatherer) http.Handler {
	turns := make(chan struct{}, maxScrapes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case turns <- struct{}{}:
			defer func() { <-turns }()
		case <-r.Context().Done():
			http.Error(w, "the scrape ended before its turn", http.StatusServiceUnavailable)
			return
		}
		families, err := g.Gather()
		if err != nil {
			http.Error(w, "An error has occurred while gathering the metrics:\n\n"+err.Error(), http.StatusInternalServerError)
			return
		}
		rows := c.rows()
		format := expfmt.NewFormat(expfmt.TypeTextPlain)
		w.Header().Set("Content-Type", string(format))
		var out io.Writer = w
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			defer gz.Close()
			out = gz
		}
		bw := bufio.NewWriterSize(out, 32<<10)
		defer bw.Flush()
		enc := expfmt.NewEncoder(bw, format)
		for _, f := range families {
			if err := enc.Encode(f); err != nil {
				return
			}
		}
		writeRows(bw, rows)
	})
}

// writeRows writes the per-key series of the rows, each family's
// together, in the text format. A family no key has is left out, as the
// client library leaves it out.
func writeRows(w *bufio.Writer, rows []row) {
	var b []byte
	for _, f := range perKeyFamilies {
		started := false
		for i := range rows {
			r := &rows[i]
			v, ok := f.value(r)
			if !ok {
				continue
			}
			if !started {
				started = true
				_, _ = w.WriteString("# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " gauge\n")
			}
			b = append(b[:0], f.name...)
			b = append(b, `{class="`...)
			b = appendLabelValue(b, r.class)
			b = append(b, `",name="`...)
			b = appendLabelValue(b, r.name)
			b = append(b, `",namespace="`...)
			b = appendLabelValue(b, r.namespace)
			if f.phase {
				b = append(b, `",phase="`...)
				b = appendLabelValue(b, r.phase)
			}
			b = append(b, `"} `...)
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
			b = append(b, '\n')
			if _, err := w.Write(b); err != nil {
				return
			}
		}
	}
}

// appendLabelValue appends a label value escaped as the text format
// wants it: a quote, a backslash or a line break in it cannot end the
// value or the line. (summarize made it valid UTF-8.)
func appendLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, v[i])
		}
	}
	return b
}

// acceptsGzip is whether an Accept-Encoding header lists gzip, with a
// weight above zero.
func acceptsGzip(headers []string) bool {
	for _, h := range headers {
		for _, part := range strings.Split(h, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
				if w, err := strconv.ParseFloat(q, 64); err == nil && w == 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}
