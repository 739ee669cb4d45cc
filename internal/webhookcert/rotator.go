package webhookcert

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The rotator reads and patches the webhook configuration: config/with-webhook
// grants that for Keywarden's own configuration only, and no other install
// grants it at all.

// Rotator keeps the webhook's certificates current.
type Rotator struct {
	// Client reads and writes the Secret and the webhook configuration
	// directly, not through a cache.
	Client client.Client
	// Secret is where the CA and the serving certificate are kept.
	Secret types.NamespacedName
	// WebhookConfig, when set, is the ValidatingWebhookConfiguration whose
	// webhooks get the CA bundle.
	WebhookConfig string
	// CAConfigMap, when set, is the ConfigMap whose key ca.crt
	// (CACertKey) gets the CA, for clients to trust (the verifier's).
	CAConfigMap types.NamespacedName
	// Names are the DNS names (or IP addresses) the certificate serves:
	// the webhook Service's names.
	Names []string
	// CertDir receives tls.crt and tls.key for the webhook server, which
	// reloads them when they change.
	CertDir string
	// Validity of new certificates, RenewBefore their expiry, and how often
	// to check: 1 year, 30 days and 1 hour when zero.
	Validity, RenewBefore, Interval time.Duration
	// Clock tells the time and ticks the checks; the real clock when nil.
	Clock clock.WithTicker
	Log   logr.Logger
}

func (r *Rotator) defaults() {
	if r.Validity == 0 {
		r.Validity = 365 * 24 * time.Hour
	}
	if r.RenewBefore == 0 {
		r.RenewBefore = 30 * 24 * time.Hour
	}
	if r.Interval == 0 {
		r.Interval = time.Hour
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
}

// NeedLeaderElection is false: every replica serves the webhook and needs
// the files.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start checks the certificates every interval until ctx ends.
func (r *Rotator) Start(ctx context.Context) error {
	r.defaults()
	t := r.Clock.NewTicker(r.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			if err := r.Ensure(ctx); err != nil {
				r.Log.Error(err, "Unable to renew the serving certificate")
			}
		}
	}
}

// Ensure makes the Secret hold a usable certificate (creating or renewing
// it), writes it into CertDir and puts the CA into the webhook
// configuration. Call it once before the webhook server starts.
func (r *Rotator) Ensure(ctx context.Context) error {
	r.defaults()
	b, err := r.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := r.writeFiles(b); err != nil {
		return err
	}
	if r.WebhookConfig != "" {
		if err := r.injectCA(ctx, b.caCert); err != nil {
			return err
		}
	}
	if r.CAConfigMap.Name != "" {
		return r.publishCA(ctx, b.caCert)
	}
	return nil
}

// publishCA makes CAConfigMap hold the CA.
func (r *Rotator) publishCA(ctx context.Context, ca []byte) error {
	for range 5 {
		cm := &corev1.ConfigMap{}
		err := r.Client.Get(ctx, r.CAConfigMap, cm)
		switch {
		case apierrors.IsNotFound(err):
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: r.CAConfigMap.Namespace, Name: r.CAConfigMap.Name},
				Data:       map[string]string{CACertKey: string(ca)},
			}
			err = r.Client.Create(ctx, cm)
		case err != nil:
			return fmt.Errorf("reading ConfigMap %s: %w", r.CAConfigMap, err)
		case cm.Data[CACertKey] == string(ca):
			return nil
		default:
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[CACertKey] = string(ca)
			err = r.Client.Update(ctx, cm)
		}
		switch {
		case err == nil:
			return nil
		case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
			continue
		default:
			return fmt.Errorf("publishing the CA in ConfigMap %s: %w", r.CAConfigMap, err)
		}
	}
	return fmt.Errorf("ConfigMap %s keeps changing", r.CAConfigMap)
}

func (r *Rotator) ensureSecret(ctx context.Context) (bundle, error) {
	for range 5 {
		s := &corev1.Secret{}
		err := r.Client.Get(ctx, r.Secret, s)
		if err != nil && !apierrors.IsNotFound(err) {
			return bundle{}, fmt.Errorf("reading Secret %s: %w", r.Secret, err)
		}
		exists := err == nil
		if exists {
			b := fromData(s.Data)
			if r.usable(b) == nil {
				return b, nil
			}
		}
		b, err := generate(r.Names, r.Clock.Now(), r.Validity)
		if err != nil {
			return bundle{}, err
		}
		if !exists {
			s = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: r.Secret.Namespace, Name: r.Secret.Name},
				Type:       corev1.SecretTypeTLS,
				Data:       b.data(),
			}
			err = r.Client.Create(ctx, s)
		} else {
			s.Data = b.data()
			err = r.Client.Update(ctx, s) // fails on a conflicting renewal by another replica
		}
		switch {
		case err == nil:
			r.Log.Info("Issued a serving certificate", "secret", r.Secret, "names", r.Names)
			return b, nil
		case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
			continue // another replica won; use its certificate
		default:
			return bundle{}, fmt.Errorf("writing Secret %s: %w", r.Secret, err)
		}
	}
	return bundle{}, fmt.Errorf("secret %s keeps changing", r.Secret)
}

func (r *Rotator) usable(b bundle) error { return b.usable(r.Names, r.Clock.Now(), r.RenewBefore) }

// writeFiles writes the serving pair where the webhook server reads it, key
// first, each through a rename so that no reader sees half a file.
func (r *Rotator) writeFiles(b bundle) error {
	if err := os.MkdirAll(r.CertDir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{PrivKeyKey, b.key}, {CertKey, b.cert}} {
		path := filepath.Join(r.CertDir, f.name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, f.data) {
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

func (r *Rotator) injectCA(ctx context.Context, ca []byte) error {
	cfg := &admissionv1.ValidatingWebhookConfiguration{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: r.WebhookConfig}, cfg); err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", r.WebhookConfig, err)
	}
	base := cfg.DeepCopy()
	changed := false
	for i := range cfg.Webhooks {
		if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, ca) {
			cfg.Webhooks[i].ClientConfig.CABundle = ca
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := r.Client.Patch(ctx, cfg, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("injecting the CA into ValidatingWebhookConfiguration %s: %w", r.WebhookConfig, err)
	}
	return nil
}
