// Package webhookcert lets the manager serve its admission webhook and its
// verifier without cert-manager: it keeps a CA and a serving certificate in
// a Secret, writes the serving certificate where the server reads it,
// publishes the CA (in the ValidatingWebhookConfiguration, a ConfigMap, or
// both), and renews both before they expire, with an overlap: the next CA
// is published before any replica serves the next certificate, and the
// previous one after they all have. Every replica runs it; they agree
// through the Secret's resourceVersion, so only one new certificate wins a
// renewal.
package webhookcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Secret data keys.
const (
	CACertKey  = "ca.crt"
	CAKeyKey   = "ca.key"
	CertKey    = "tls.crt"
	PrivKeyKey = "tls.key"
)

// bundle is a CA and a serving certificate signed by it, PEM-encoded.
type bundle struct {
	caCert, caKey, cert, key []byte
}

func (b bundle) data() map[string][]byte {
	return map[string][]byte{CACertKey: b.caCert, CAKeyKey: b.caKey, CertKey: b.cert, PrivKeyKey: b.key}
}

func fromData(d map[string][]byte) bundle {
	return bundle{caCert: d[CACertKey], caKey: d[CAKeyKey], cert: d[CertKey], key: d[PrivKeyKey]}
}

// Secret data keys of a renewal in progress: the next bundle and when it
// is served, and the previous CA and until when it stays trusted.
const (
	nextPrefix       = "next."
	nextFromKey      = "next.from"
	previousCAKey    = "previous.ca.crt"
	previousUntilKey = "previous.until"
)

// state is what the Secret holds: the bundle served, and a renewal in
// progress.
type state struct {
	current       bundle
	next          *bundle
	nextFrom      time.Time
	previousCA    []byte
	previousUntil time.Time
}

func stateFrom(d map[string][]byte) state {
	st := state{current: fromData(d)}
	if from, err := time.Parse(time.RFC3339, string(d[nextFromKey])); err == nil {
		n := bundle{caCert: d[nextPrefix+CACertKey], caKey: d[nextPrefix+CAKeyKey], cert: d[nextPrefix+CertKey], key: d[nextPrefix+PrivKeyKey]}
		st.next, st.nextFrom = &n, from
	}
	if until, err := time.Parse(time.RFC3339, string(d[previousUntilKey])); err == nil && len(d[previousCAKey]) > 0 {
		st.previousCA, st.previousUntil = d[previousCAKey], until
	}
	return st
}

func (st state) data() map[string][]byte {
	d := st.current.data()
	if n := st.next; n != nil {
		for k, v := range n.data() {
			d[nextPrefix+k] = v
		}
		d[nextFromKey] = []byte(st.nextFrom.UTC().Format(time.RFC3339))
	}
	if st.previousCA != nil {
		d[previousCAKey] = st.previousCA
		d[previousUntilKey] = []byte(st.previousUntil.UTC().Format(time.RFC3339))
	}
	return d
}

// trusted is the CAs clients must trust: the one served, the next one
// while it is prepared, the previous one while replicas may still serve
// it.
func (st state) trusted() []byte {
	out := append([]byte{}, st.current.caCert...)
	if st.next != nil {
		out = append(out, st.next.caCert...)
	}
	return append(out, st.previousCA...)
}

// generate makes a new CA and a serving certificate for the names (DNS
// names, or IP addresses), valid from now for validity.
func generate(names []string, now time.Time, validity time.Duration) (bundle, error) {
	return generateWith(names, now, validity, validity)
}

// generateWith is generate with the CA valid for caValidity.
func generateWith(names []string, now time.Time, caValidity, validity time.Duration) (bundle, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return bundle{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "keywarden-webhook-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		// The CA signs one certificate, for these names: whoever takes its
		// key (from the controller's Secret) can sign nothing a client
		// that trusts it would accept for another name, nor another CA.
		PermittedDNSDomainsCritical: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			bits := 8 * len(ip.To16())
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 32
			}
			caTmpl.PermittedIPRanges = append(caTmpl.PermittedIPRanges, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		} else {
			caTmpl.PermittedDNSDomains = append(caTmpl.PermittedDNSDomains, n)
		}
	}
	if len(caTmpl.PermittedIPRanges) == 0 {
		// Names alone: no address at all (permitting none is no
		// constraint).
		caTmpl.ExcludedIPRanges = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return bundle{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return bundle{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return bundle{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return bundle{}, err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return bundle{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return bundle{}, err
	}
	return bundle{
		caCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		caKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKeyDER}),
		cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

// usable reports whether the bundle holds a serving certificate for every
// name, signed by its CA, both of which stay valid past now+renewBefore:
// the API server stops trusting the webhook when either expires.
func (b bundle) usable(names []string, now time.Time, renewBefore time.Duration) error {
	if _, err := tls.X509KeyPair(b.cert, b.key); err != nil {
		return fmt.Errorf("serving key pair: %w", err)
	}
	block, _ := pem.Decode(b.cert)
	if block == nil {
		return errors.New("no serving certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	caBlock, _ := pem.Decode(b.caCert)
	if caBlock == nil {
		return errors.New("no CA certificate")
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return fmt.Errorf("CA certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, n := range names {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: n, Roots: roots, CurrentTime: now}); err != nil {
			return fmt.Errorf("serving certificate for %s: %w", n, err)
		}
	}
	if cert.NotAfter.Before(now.Add(renewBefore)) {
		return fmt.Errorf("serving certificate expires at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if ca.NotAfter.Before(now.Add(renewBefore)) {
		return fmt.Errorf("CA certificate expires at %s", ca.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func (b bundle) equal(o bundle) bool {
	return bytes.Equal(b.caCert, o.caCert) && bytes.Equal(b.cert, o.cert) && bytes.Equal(b.key, o.key)
}
