package release

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// testRegistry serves a registry in-process, with the referrers API as
// the common registries have it, and returns its host.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// cosignKey writes a key as cosign generate-key-pair does: ECDSA P-256,
// PKCS #8, encrypted with the password.
func cosignKey(t *testing.T, password string) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	box, err := encrypted.Encrypt(der, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: box})
}

func pushRandom(t *testing.T, ref string) name.Digest {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return tag.Context().Digest(d.String())
}

func TestLoadSigner(t *testing.T) {
	key := cosignKey(t, "correct horse")
	if _, err := LoadSigner(key, []byte("wrong")); err == nil || !strings.Contains(err.Error(), "COSIGN_PASSWORD") {
		t.Errorf("a wrong password: %v", err)
	}
	if _, err := LoadSigner(key, []byte("correct horse")); err != nil {
		t.Errorf("the right password: %v", err)
	}
	if _, err := LoadSigner([]byte("not a key"), nil); err == nil {
		t.Error("a file that is not PEM was taken")
	}
	// An RSA key, or a curve cosign does not sign with, is refused by
	// name.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(p384)
	if _, err := LoadSigner(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("a P-384 key: %v", err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})
	if _, err := LoadSigner(cert, nil); err == nil || !strings.Contains(err.Error(), `"CERTIFICATE"`) {
		t.Errorf("a certificate: %v", err)
	}
}

func TestSign(t *testing.T) {
	host := testRegistry(t)
	signer, err := LoadSigner(cosignKey(t, "pw"), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signer.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadSigner(cosignKey(t, "pw"), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _ := other.PublicKeyPEM()

	a := pushRandom(t, host+"/keywarden/keywarden:v1.0.0")
	b := pushRandom(t, host+"/keywarden/keywarden:v1.0.1")
	if err := Verify(a, pub, nil); err == nil {
		t.Fatal("an unsigned image verified")
	}
	if err := signer.Sign(a, nil); err != nil {
		t.Fatal(err)
	}
	if err := Verify(a, pub, nil); err != nil {
		t.Errorf("the signed image: %v", err)
	}
	if err := Verify(a, otherPub, nil); err == nil {
		t.Error("the image verified with a key that did not sign it")
	}
	// A second signer's signature is added beside the first.
	if err := other.Sign(a, nil); err != nil {
		t.Fatal(err)
	}
	if Verify(a, pub, nil) != nil || Verify(a, otherPub, nil) != nil {
		t.Error("a second signature took the place of the first")
	}

	// Attack: the valid signature of a, copied to where b's signatures
	// are kept, does not make b verify: the payload names a's digest.
	sigs, err := remote.Image(SignatureTag(a))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(SignatureTag(b), sigs); err != nil {
		t.Fatal(err)
	}
	if err := Verify(b, pub, nil); err == nil {
		t.Error("another image's signature made b verify")
	}
	// Attack: b's payload signed by nobody, with a's signature in the
	// annotation.
	m, _ := sigs.Manifest()
	forged, err := mutate.Append(mutate.MediaType(sigs, m.MediaType), mutate.Addendum{
		Layer:       static.NewLayer([]byte(`{"critical":{"identity":{"docker-reference":"`+b.Context().Name()+`"},"image":{"docker-manifest-digest":"`+b.DigestStr()+`"},"type":"cosign container image signature"},"optional":null}`), SimpleSigningMediaType),
		Annotations: map[string]string{SignatureAnnotation: m.Layers[0].Annotations[SignatureAnnotation]},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(SignatureTag(b), forged); err != nil {
		t.Fatal(err)
	}
	if err := Verify(b, pub, nil); err == nil {
		t.Error("a payload naming b, with a signature of another payload, verified")
	}
	// The same image under another repository is not what was signed.
	img, err := remote.Image(a)
	if err != nil {
		t.Fatal(err)
	}
	moved, _ := name.NewDigest(host + "/elsewhere/keywarden@" + a.DigestStr())
	if err := remote.Write(moved, img); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(SignatureTag(moved), sigs); err != nil {
		t.Fatal(err)
	}
	if err := Verify(moved, pub, nil); err == nil {
		t.Error("a signature naming another repository verified")
	}
}

// TestSignVersion: a signature names the release's version, so that an
// older signed release re-tagged as a newer one is not taken for it.
func TestSignVersion(t *testing.T) {
	host := testRegistry(t)
	signer, err := LoadSigner(cosignKey(t, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signer.PublicKeyPEM()
	old := pushRandom(t, host+"/keywarden/keywarden:v1.0.0")
	if err := signer.Sign(old, map[string]string{"version": "v1.0.0"}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(old, pub, map[string]string{"version": "v1.0.0"}); err != nil {
		t.Errorf("the version it was signed for: %v", err)
	}
	if err := Verify(old, pub, map[string]string{"version": "v1.1.0"}); err == nil {
		t.Error("v1.0.0's signature verified as v1.1.0")
	}
}

// TestSignOverPlantedTag: whatever someone who may push put where the
// signatures go (an index, a manifest whose layers' blobs are gone), the
// release is still signed, and a valid signature beside an unreadable
// layer still verifies.
func TestSignOverPlantedTag(t *testing.T) {
	host := testRegistry(t)
	signer, err := LoadSigner(cosignKey(t, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := signer.PublicKeyPEM()
	a := pushRandom(t, host+"/keywarden/keywarden:v1.0.0")
	idx, err := random.Index(32, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(SignatureTag(a), idx); err != nil {
		t.Fatal(err)
	}
	if err := signer.Sign(a, nil); err != nil {
		t.Fatalf("signing over a planted index: %v", err)
	}
	if err := Verify(a, pub, nil); err != nil {
		t.Errorf("after signing over a planted index: %v", err)
	}

	// A signature image with a layer whose blob is gone, then ours.
	b := pushRandom(t, host+"/keywarden/keywarden:v1.0.1")
	missing := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},` +
		`"layers":[{"mediaType":"` + string(SimpleSigningMediaType) + `","size":5,"digest":"sha256:` + strings.Repeat("0", 64) + `","annotations":{"` + SignatureAnnotation + `":"AAAA"}}]}`
	if err := remote.WriteLayer(b.Context(), static.NewLayer([]byte("{}"), "application/vnd.oci.image.config.v1+json")); err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(SignatureTag(b), rawManifest{raw: []byte(missing), mt: "application/vnd.oci.image.manifest.v1+json"}); err != nil {
		t.Fatal(err)
	}
	if err := signer.Sign(b, nil); err != nil {
		t.Fatalf("signing beside a layer whose blob is gone: %v", err)
	}
	if err := Verify(b, pub, nil); err != nil {
		t.Errorf("after signing beside a layer whose blob is gone: %v", err)
	}
	// A layer whose blob is gone, put before a valid signature, does not
	// hide it.
	sigs, err := remote.Image(SignatureTag(b))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sigs.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	planted := *m
	planted.Layers = append([]v1.Descriptor{{MediaType: SimpleSigningMediaType, Size: 5, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)},
		Annotations: map[string]string{SignatureAnnotation: "AAAA"}}}, m.Layers...)
	raw, err := json.Marshal(planted)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(SignatureTag(b), rawManifest{raw: raw, mt: m.MediaType}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(b, pub, nil); err != nil {
		t.Errorf("a valid signature behind a layer whose blob is gone: %v", err)
	}
}

func TestSignBlob(t *testing.T) {
	signer, err := LoadSigner(cosignKey(t, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("0123  keywarden.yaml\n")
	sig, err := signer.SignBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	if !ecdsa.VerifyASN1(&signer.key.PublicKey, sum[:], raw) {
		t.Error("the blob's signature does not verify")
	}
	tampered := sha256.Sum256([]byte("0124  keywarden.yaml\n"))
	if ecdsa.VerifyASN1(&signer.key.PublicKey, tampered[:], raw) {
		t.Error("the signature verifies another blob")
	}
}
