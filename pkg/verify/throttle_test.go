package verify_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"keywarden.dev/keywarden/internal/app/verifier"
	"keywarden.dev/keywarden/test/kit"
)

// throttlingProxy stands in front of the API server and, while throttle
// is set, answers every list and watch of APIKeys 429 with Retry-After, as
// the API server's priority and fairness does to a flow over its share;
// setting it ends the watches it carries, as a restart of the API server
// does. Everything else passes through.
type throttlingProxy struct {
	*httptest.Server
	throttle atomic.Bool

	mu      sync.Mutex
	watches map[*http.Request]context.CancelFunc
}

func newThrottlingProxy(admin *rest.Config) *throttlingProxy {
	target, err := url.Parse(admin.Host)
	Expect(err).NotTo(HaveOccurred())
	transport, err := rest.TransportFor(admin)
	Expect(err).NotTo(HaveOccurred())
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport, rp.FlushInterval = transport, -1
	p := &throttlingProxy{watches: map[*http.Request]context.CancelFunc{}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiKeys := strings.HasPrefix(r.URL.Path, "/apis/keywarden.dev/") && strings.HasSuffix(r.URL.Path, "/apikeys") && r.Method == http.MethodGet
		if apiKeys && p.throttle.Load() {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too many requests","reason":"TooManyRequests","code":429}`))
			return
		}
		if apiKeys && r.URL.Query().Get("watch") == "true" {
			ctx, cancel := context.WithCancel(r.Context())
			r = r.WithContext(ctx)
			p.mu.Lock()
			p.watches[r] = cancel
			p.mu.Unlock()
			defer func() {
				p.mu.Lock()
				delete(p.watches, r)
				p.mu.Unlock()
				cancel()
			}()
		}
		rp.ServeHTTP(w, r)
	}))
	return p
}

// start throttles, and ends the running watches.
func (p *throttlingProxy) start() {
	p.throttle.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cancel := range p.watches {
		cancel()
	}
}

var _ = Describe("A verifier whose watch the API server throttles", func() {
	It("knows its index stale, refuses past its maximum staleness, and answers again once its watch runs", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		raw, _ := issue(ctx, ns, "throttled", nil)

		proxy := newThrottlingProxy(env.Config)
		defer proxy.Close()
		cfg := rest.CopyConfig(env.As(kit.VerifierAccount))
		cfg.Host, cfg.TLSClientConfig = proxy.URL, rest.TLSClientConfig{}
		reg := prometheus.NewRegistry()
		replica, err := env.StartVerifierWith(cfg, []string{"--verifier-max-staleness=2s"}, verifier.Parts{Registerer: reg})
		Expect(err).NotTo(HaveOccurred())
		defer func() { Expect(replica.Stop()).To(Succeed()) }()
		answer := func() string {
			body := `{"key":"` + raw + `","namespace":"` + ns + `"}`
			resp, err := httpClient.Post(replica.URL+"/v1/keys/verify", "application/json", strings.NewReader(body))
			if err != nil {
				return err.Error()
			}
			defer func() { _ = resp.Body.Close() }()
			b, _ := io.ReadAll(resp.Body)
			return fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		Eventually(answer, 20*time.Second, 100*time.Millisecond).Should(HavePrefix(`200 {"valid":true`))

		// Throttled: its watch ends and every list and watch is refused
		// 429 (client-go retries them without a word); the API server
		// answers its /readyz all along.
		proxy.start()
		Eventually(answer, 20*time.Second, 100*time.Millisecond).Should(And(HavePrefix("503"), ContainSubstring("not been known current")))
		Expect(gaugeValue(reg, "keywarden_verifier_index_staleness_seconds")).To(BeNumerically(">", 2))

		proxy.throttle.Store(false)
		Eventually(answer, 60*time.Second, 200*time.Millisecond).Should(HavePrefix(`200 {"valid":true`))
		Expect(gaugeValue(reg, "keywarden_verifier_index_staleness_seconds")).To(BeZero())
	})
})
