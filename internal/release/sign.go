package release

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// What cosign reads: a signature of an artifact in a registry is a layer of
// an image tagged sha256-<hex>.sig beside it, the layer the signed payload
// and its annotation the signature (ECDSA over the payload's SHA-256, in
// base64). cosign verify --key checks it; so does Verify.
const (
	SimpleSigningMediaType types.MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
)

const (
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	signatureType       = "cosign container image signature"
)

// Signer signs with a key as cosign generate-key-pair writes it (ECDSA
// P-256, encrypted with a password), or an unencrypted ECDSA key in PEM.
type Signer struct {
	key *ecdsa.PrivateKey
}

// LoadSigner reads a private key. An encrypted one (cosign's "ENCRYPTED
// SIGSTORE PRIVATE KEY" or the older "ENCRYPTED COSIGN PRIVATE KEY") is
// opened with password.
func LoadSigner(pemBytes, password []byte) (*Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("the signing key is not PEM")
	}
	der := block.Bytes
	switch block.Type {
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		var err error
		if der, err = encrypted.Decrypt(block.Bytes, password); err != nil {
			return nil, fmt.Errorf("opening the signing key (is COSIGN_PASSWORD right?): %w", err)
		}
	case "PRIVATE KEY", "EC PRIVATE KEY":
	default:
		return nil, fmt.Errorf("the signing key is a %q; want an ECDSA private key (cosign generate-key-pair writes one)", block.Type)
	}
	var key any
	var err error
	if block.Type == "EC PRIVATE KEY" {
		key, err = x509.ParseECPrivateKey(der)
	} else {
		key, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the signing key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("the signing key is not an ECDSA P-256 key (cosign's)")
	}
	return &Signer{key: ec}, nil
}

// PublicKeyPEM is the key cosign verify --key reads.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Matches says whether publicKeyPEM is this signer's public key.
func (s *Signer) Matches(publicKeyPEM []byte) error {
	pub, err := parsePublicKey(publicKeyPEM)
	if err != nil {
		return err
	}
	if !pub.Equal(&s.key.PublicKey) {
		return errors.New("the signing key is not this public key's pair")
	}
	return nil
}

// parsePublicKey reads an ECDSA public key in PEM, as cosign.pub holds it.
func parsePublicKey(publicKeyPEM []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(publicKeyPEM)
	if block == nil {
		return nil, errors.New("not a public key in PEM")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("the public key is not ECDSA")
	}
	return pub, nil
}

// SignBlob is cosign sign-blob's signature of a file: base64, as
// cosign verify-blob --signature reads it.
func (s *Signer) SignBlob(blob []byte) (string, error) {
	sum := sha256.Sum256(blob)
	sig, err := s.key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// simpleSigning is the payload cosign signs for an artifact in a registry.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// SignatureTag is where the signatures of the artifact d are kept.
func SignatureTag(d name.Digest) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
}

// Sign signs the artifact d (an image, an index or a chart) with the
// annotations (such as the release's version, which cosign verify -a
// checks, so that an older signed release put under a newer tag is not
// taken for it), and writes the signature beside it, keeping signatures
// already there.
func (s *Signer) Sign(d name.Digest, annotations map[string]string, opts ...remote.Option) error {
	var p simpleSigning
	p.Critical.Identity.DockerReference = d.Context().Name()
	p.Critical.Image.DockerManifestDigest = d.DigestStr()
	p.Critical.Type = signatureType
	if len(annotations) > 0 {
		p.Optional = map[string]any{}
		for k, v := range annotations {
			p.Optional[k] = v
		}
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	sig, err := s.SignBlob(payload)
	if err != nil {
		return err
	}
	tag := SignatureTag(d)
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	var te *transport.Error
	var ne net.Error
	kept := false
	switch existing, err := remote.Image(tag, opts...); {
	case err == nil && isSignatureImage(existing):
		base, kept = existing, true
	case err != nil && !isNotFound(err) && (errors.As(err, &te) || errors.As(err, &ne)):
		return fmt.Errorf("reading %s: %w", tag, err)
	default:
		// Nothing there, or something that is no cosign signature image
		// (planted to make signing fail after the release was pushed):
		// a fresh one takes its place.
	}
	add := mutate.Addendum{
		Layer:       static.NewLayer(payload, SimpleSigningMediaType),
		Annotations: map[string]string{SignatureAnnotation: sig},
	}
	img, err := mutate.Append(base, add)
	if err != nil {
		return err
	}
	err = remote.Write(tag, img, opts...)
	if err != nil && kept {
		// The signatures there could not be carried over (a layer whose
		// blob is gone): ours alone.
		fresh, ferr := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), add)
		if ferr != nil {
			return ferr
		}
		err = remote.Write(tag, fresh, opts...)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", tag, err)
	}
	return nil
}

// isSignatureImage is whether img is what Sign appends to: an image whose
// layers are all signed payloads.
func isSignatureImage(img v1.Image) bool {
	m, err := img.Manifest()
	if err != nil || len(m.Layers) == 0 {
		return false
	}
	for _, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType {
			return false
		}
	}
	return true
}

// Verify checks that the artifact d carries a signature by the public key
// in PEM that names d's repository and digest, and every annotation given,
// as cosign verify --key -a does (without a transparency log).
func Verify(d name.Digest, publicKeyPEM []byte, annotations map[string]string, opts ...remote.Option) error {
	pub, err := parsePublicKey(publicKeyPEM)
	if err != nil {
		return err
	}
	img, err := remote.Image(SignatureTag(d), opts...)
	if err != nil {
		return fmt.Errorf("no signature of %s: %w", d, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	for _, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[SignatureAnnotation])
		if err != nil {
			continue
		}
		// A layer that cannot be read is skipped, not fatal: anyone who
		// may push could otherwise plant one to hide a valid signature.
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			continue
		}
		payload, err := readAll(layer)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(pub, sum[:], sig) {
			continue
		}
		var p simpleSigning
		if json.Unmarshal(payload, &p) != nil {
			continue
		}
		if p.Critical.Image.DockerManifestDigest != d.DigestStr() || p.Critical.Identity.DockerReference != d.Context().Name() || p.Critical.Type != signatureType {
			continue
		}
		annotated := true
		for k, v := range annotations {
			annotated = annotated && p.Optional[k] == v
		}
		if annotated {
			return nil
		}
	}
	return fmt.Errorf("no signature of %s by this key", d)
}

// readAll reads a signature's payload, which is small.
func readAll(l v1.Layer) ([]byte, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

// isNotFound is a registry's answer that an artifact is not there.
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
