package webhookcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func TestGenerateAndUsable(t *testing.T) {
	names := []string{"keywarden-webhook-service.keywarden-system.svc", "127.0.0.1"}
	b, err := generate(names, t0, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A serving certificate for a year, from a CA that lasts ten days.
	shortCA, err := generateWith(names, t0, 10*24*time.Hour, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		b           bundle
		names       []string
		now         time.Time
		renewBefore time.Duration
		wantErr     string
	}{
		{"fresh", b, names, t0, 30 * 24 * time.Hour, ""},
		{"IP name", b, []string{"127.0.0.1"}, t0, 0, ""},
		{"inside the renewal window", b, names, t0.Add(340 * 24 * time.Hour), 30 * 24 * time.Hour, "expires at"},
		{"expired", b, names, t0.Add(400 * 24 * time.Hour), 0, "expired"},
		{"another name", b, []string{"other.svc"}, t0, 0, "other.svc"},
		{"empty", bundle{}, names, t0, 0, "serving key pair"},
		{"key of another pair", bundle{caCert: b.caCert, caKey: b.caKey, cert: b.cert, key: mustGenerate(t).key}, names, t0, 0, "serving key pair"},
		{"signed by another CA", bundle{caCert: mustGenerate(t).caCert, cert: b.cert, key: b.key}, names, t0, 0, "unknown authority"},
		{"a CA that expires first", shortCA, names, t0, 30 * 24 * time.Hour, "CA certificate expires at"},
		{"no CA", bundle{cert: b.cert, key: b.key}, names, t0, 0, "no CA certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.usable(tt.names, tt.now, tt.renewBefore)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("usable: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("usable = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
	if fromData(b.data()).equal(b) == false {
		t.Error("a bundle does not survive the Secret's data")
	}
}

func mustGenerate(t *testing.T) bundle {
	t.Helper()
	b, err := generate([]string{"x.svc"}, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTimingCheck(t *testing.T) {
	tests := []struct {
		name    string
		timing  Timing
		wantErr string
	}{
		{"the defaults", Timing{365 * 24 * time.Hour, 30 * 24 * time.Hour, time.Hour}, ""},
		{"short, for a test", Timing{40 * time.Second, 30 * time.Second, 2 * time.Second}, ""},
		{"the tightest window", Timing{5 * time.Second, 4 * time.Second, time.Second}, ""},
		{"checks faster than a second", Timing{time.Hour, 30 * time.Minute, 500 * time.Millisecond}, "at least 1s"},
		{"a window shorter than four checks", Timing{365 * 24 * time.Hour, 3 * time.Hour, time.Hour}, "four check intervals"},
		{"no window", Timing{365 * 24 * time.Hour, 0, time.Hour}, "four check intervals"},
		{"validity within the window", Timing{30 * 24 * time.Hour, 30 * 24 * time.Hour, time.Hour}, "renewed at every check"},
		{"validity less than a check past the window", Timing{5*time.Hour - time.Minute, 4 * time.Hour, time.Hour}, "renewed at every check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.timing.Check()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCAIsConstrainedToItsNames: the CA's key, taken, signs nothing a
// client that trusts the CA accepts for another name, nor a CA below it.
func TestCAIsConstrainedToItsNames(t *testing.T) {
	names := []string{"keywarden-verifier.keywarden-system.svc", "127.0.0.1"}
	b, err := generate(names, t0, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey := caOf(t, b)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// sign issues a certificate from parent, signed with its key.
	sign := func(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, dns []string, ips []net.IP, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: serial(), NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
			DNSNames: dns, IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			IsCA: isCA, BasicConstraintsValid: isCA}
		if isCA {
			tmpl.KeyUsage = x509.KeyUsageCertSign
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, key
	}
	verify := func(c *x509.Certificate, name string, intermediates ...*x509.Certificate) error {
		pool := x509.NewCertPool()
		for _, i := range intermediates {
			pool.AddCert(i)
		}
		_, err := c.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: pool, CurrentTime: t0})
		return err
	}
	own, _ := sign(ca, caKey, []string{names[0]}, nil, false)
	if err := verify(own, names[0]); err != nil {
		t.Errorf("a certificate for the CA's own name: %v", err)
	}
	ownIP, _ := sign(ca, caKey, nil, []net.IP{net.ParseIP("127.0.0.1")}, false)
	if err := verify(ownIP, "127.0.0.1"); err != nil {
		t.Errorf("a certificate for the CA's own address: %v", err)
	}
	for _, name := range []string{"kubernetes.default.svc", "bank.example.com", "svc"} {
		c, _ := sign(ca, caKey, []string{name}, nil, false)
		if err := verify(c, name); err == nil {
			t.Errorf("a certificate the CA's key signed for %s verifies", name)
		}
	}
	other, _ := sign(ca, caKey, nil, []net.IP{net.ParseIP("10.0.0.1")}, false)
	if err := verify(other, "10.0.0.1"); err == nil {
		t.Error("a certificate the CA's key signed for 10.0.0.1 verifies")
	}
	// A CA below it, issuing for the CA's own name: refused all the same.
	sub, subKey := sign(ca, caKey, nil, nil, true)
	leaf, _ := sign(sub, subKey, []string{names[0]}, nil, false)
	if err := verify(leaf, names[0], sub); err == nil {
		t.Error("a certificate from a CA the CA's key signed verifies")
	}
}

// TestCAOfNamesAloneSignsNoAddress: the installs' CAs are for DNS names
// only; their key, taken, signs no certificate for an IP address that a
// client trusting them accepts.
func TestCAOfNamesAloneSignsNoAddress(t *testing.T) {
	b, err := generate([]string{"keywarden-verifier.keywarden-system.svc"}, t0, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey := caOf(t, b)
	if err := b.usable([]string{"keywarden-verifier.keywarden-system.svc"}, t0, time.Hour); err != nil {
		t.Fatalf("its own certificate: %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: serial(), NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("fd00::1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, addr := range []string{"10.0.0.1", "fd00::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: addr, Roots: roots, CurrentTime: t0}); err == nil {
			t.Errorf("a certificate for %s, signed with the key of a CA of names alone, verifies", addr)
		}
	}
}

// caOf is the bundle's CA and its key.
func caOf(t *testing.T, b bundle) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	caBlock, _ := pem.Decode(b.caCert)
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	keyBlock, _ := pem.Decode(b.caKey)
	caKey, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return ca, caKey
}
