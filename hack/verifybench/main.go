// Command verifybench serves the verifier's handler over an index of
// synthetic keys, and a trivial handler, each over plain HTTP and TLS with
// the same server settings, for an external load generator (wrk, from
// hack/bench.sh) to compare. It writes the keys, one a line, to -keys and
// serves until it is killed.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
	"keywarden.dev/keywarden/internal/keys"
	"keywarden.dev/keywarden/pkg/verify"
	"keywarden.dev/keywarden/test/harness"
)

func main() {
	n := flag.Int("n", 100000, "keys in the index")
	keysOut := flag.String("keys", "", "file to write a sample of the keys to, one a line")
	ports := flag.String("ports", "18090,18091,18092,18093", "verify over HTTP, verify over TLS, trivial over HTTP, trivial over TLS")
	pprofAddr := flag.String("pprof", "", "address of /debug/pprof, off when empty")
	flag.Parse()

	ix := verify.NewIndex()
	var sample []string
	for i := range *n {
		raw, err := keys.Generate(keys.DefaultPrefix)
		if err != nil {
			log.Fatal(err)
		}
		ix.Upsert(&keywardenv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "key-" + strconv.Itoa(i)},
			Spec:       keywardenv1alpha1.APIKeySpec{DisplayName: "d", Owner: "team@example.com", Role: "readonly"},
			Status: keywardenv1alpha1.APIKeyStatus{
				Phase: keywardenv1alpha1.PhaseActive, KeyHash: keys.Hash(raw), KeyPrefix: keys.DisplayPrefix(raw),
				Owner: "team@example.com", Role: "readonly", Scopes: []keywardenv1alpha1.Scope{"logs:read"},
			},
		})
		if i%100 == 0 {
			sample = append(sample, raw)
		}
	}
	if err := os.WriteFile(*keysOut, []byte(strings.Join(sample, "\n")+"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	certPEM, keyPEM, _, err := harness.SelfSignedCert("127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		log.Fatal(err)
	}
	verifier := (&verify.Handler{Index: ix, Log: logr.Discard()}).Routes()
	trivial := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"valid":true}` + "\n"))
	})
	p := strings.Split(*ports, ",")
	for i, h := range []http.Handler{verifier, verifier, trivial, trivial} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+p[i])
		if err != nil {
			log.Fatal(err)
		}
		if i%2 == 1 {
			ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})
		}
		// The verifier's server settings (pkg/verify.Server).
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
		go func() { log.Fatal(srv.Serve(ln)) }()
	}
	if *pprofAddr != "" {
		go func() { log.Println(http.ListenAndServe(*pprofAddr, nil)) }()
	}
	fmt.Println("ready")
	select {}
}
