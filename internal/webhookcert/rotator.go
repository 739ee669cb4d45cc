package webhookcert

import (
	"bytes"
	"context"
	"fmt"
	"maps"
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
	// ServingSecret, when set, is a Secret of type kubernetes.io/tls that
	// receives the serving pair alone (tls.crt and tls.key, never a CA's
	// key), for servers elsewhere to read (see Follower): the verifier
	// reads it, and never the Secret that keeps the CAs.
	ServingSecret types.NamespacedName
	// Names are the DNS names (or IP addresses) the certificate serves:
	// the webhook Service's names.
	Names []string
	// CertDir receives tls.crt and tls.key for the webhook server, which
	// reloads them when they change.
	CertDir string
	// Timing: new certificates are valid for 1 year, renewed 30 days
	// before their end, and checked every hour, where it is zero.
	Timing
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
	every(ctx, r.Clock, r.Interval, func() {
		if err := r.Ensure(ctx); err != nil {
			r.Log.Error(err, "Unable to renew the serving certificate")
		}
	})
	return nil
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, clk clock.WithTicker, interval time.Duration, f func()) {
	t := clk.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			f()
		}
	}
}

// Ensure makes the Secret hold a usable certificate (creating or renewing
// it), writes it into CertDir and publishes the CAs to trust (in the
// webhook configuration, the CA ConfigMap, or both). Call it once before
// the server starts.
//
// Renewal overlaps, so that no client ever meets a certificate signed by a
// CA it was not given: when the certificate nears its end, a next CA and
// certificate are made and the next CA is published beside the current
// one; only overlap later (two checks) do replicas serve the next
// certificate, and the old CA stays published for overlap more, until
// every replica has moved on.
func (r *Rotator) Ensure(ctx context.Context) error {
	r.defaults()
	st, err := r.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := writeFiles(r.CertDir, st.current); err != nil {
		return err
	}
	if r.ServingSecret.Name != "" {
		if err := r.publishServing(ctx, st.current); err != nil {
			return err
		}
	}
	trusted := st.trusted()
	if r.WebhookConfig != "" {
		if err := r.injectCA(ctx, trusted); err != nil {
			return err
		}
	}
	if r.CAConfigMap.Name != "" {
		return r.publishCA(ctx, trusted)
	}
	return nil
}

// publishCA makes CAConfigMap hold the CAs to trust.
func (r *Rotator) publishCA(ctx context.Context, ca []byte) error {
	return r.publish(ctx, r.CAConfigMap, "publishing the CA in ConfigMap", func() client.Object { return &corev1.ConfigMap{} }, func(o client.Object) bool {
		cm := o.(*corev1.ConfigMap)
		if v, ok := cm.Data[CACertKey]; ok && v == string(ca) {
			return false
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[CACertKey] = string(ca)
		return true
	})
}

// publishServing makes ServingSecret hold the pair served now, and nothing
// else.
func (r *Rotator) publishServing(ctx context.Context, b bundle) error {
	data := map[string][]byte{CertKey: b.cert, PrivKeyKey: b.key}
	return r.publish(ctx, r.ServingSecret, "writing the serving pair into Secret", func() client.Object { return &corev1.Secret{} }, func(o client.Object) bool {
		s := o.(*corev1.Secret)
		if s.Type == "" {
			s.Type = corev1.SecretTypeTLS
		}
		if s.Data != nil && maps.EqualFunc(s.Data, data, bytes.Equal) {
			return false
		}
		s.Data = data
		return true
	})
}

// publish makes the object of that name hold what set writes into it:
// created when missing, updated when set changes it, and read again when
// another replica wrote first. newObj returns an empty object of its kind;
// set reports whether it changed the object.
func (r *Rotator) publish(ctx context.Context, nn types.NamespacedName, doing string, newObj func() client.Object, set func(client.Object) bool) error {
	for range 5 {
		obj := newObj()
		err := r.Client.Get(ctx, nn, obj)
		switch {
		case apierrors.IsNotFound(err):
			obj = newObj()
			obj.SetNamespace(nn.Namespace)
			obj.SetName(nn.Name)
			set(obj)
			err = r.Client.Create(ctx, obj)
		case err != nil:
			return fmt.Errorf("%s %s: reading it: %w", doing, nn, err)
		case !set(obj):
			return nil
		default:
			err = r.Client.Update(ctx, obj)
		}
		switch {
		case err == nil:
			return nil
		case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
			continue
		default:
			return fmt.Errorf("%s %s: %w", doing, nn, err)
		}
	}
	return fmt.Errorf("%s %s: it keeps changing", doing, nn)
}

func (r *Rotator) ensureSecret(ctx context.Context) (state, error) {
	for range 5 {
		s := &corev1.Secret{}
		err := r.Client.Get(ctx, r.Secret, s)
		if err != nil && !apierrors.IsNotFound(err) {
			return state{}, fmt.Errorf("reading Secret %s: %w", r.Secret, err)
		}
		exists := err == nil
		var st state
		if exists {
			st = stateFrom(s.Data)
		}
		next, changed, err := r.advance(st)
		if err != nil {
			return state{}, err
		}
		if !changed {
			return st, nil
		}
		if !exists {
			s = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: r.Secret.Namespace, Name: r.Secret.Name},
				Type:       corev1.SecretTypeTLS,
				Data:       next.data(),
			}
			err = r.Client.Create(ctx, s)
		} else {
			s.Data = next.data()
			err = r.Client.Update(ctx, s) // fails on a conflicting change by another replica
		}
		switch {
		case err == nil:
			return next, nil
		case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
			continue // another replica moved first; look again
		default:
			return state{}, fmt.Errorf("writing Secret %s: %w", r.Secret, err)
		}
	}
	return state{}, fmt.Errorf("secret %s keeps changing", r.Secret)
}

// advance is the renewal's next step from the stored state: a first
// certificate (or a new one, when the current one cannot serve at all), a
// next one prepared near the end, the switch to it once overlap has
// passed, the old CA dropped overlap after that.
func (r *Rotator) advance(st state) (state, bool, error) {
	now := r.Clock.Now()
	overlap := 2 * r.Interval
	if st.current.usable(r.Names, now, 0) != nil {
		// Nothing usable is served (none yet, expired, other names): no
		// client can be relying on it.
		b, err := generate(r.Names, now, r.Validity)
		if err != nil {
			return state{}, false, err
		}
		r.Log.Info("Issued a serving certificate", "secret", r.Secret, "names", r.Names)
		return state{current: b}, true, nil
	}
	switch {
	case st.next != nil && !now.Before(st.nextFrom):
		r.Log.Info("Serving the renewed certificate; the previous CA stays trusted a while", "secret", r.Secret)
		return state{current: *st.next, previousCA: st.current.caCert, previousUntil: now.Add(overlap)}, true, nil
	case st.next == nil && st.current.usable(r.Names, now, r.RenewBefore) != nil:
		b, err := generate(r.Names, now, r.Validity)
		if err != nil {
			return state{}, false, err
		}
		r.Log.Info("Prepared a renewed certificate; its CA is trusted before it is served", "secret", r.Secret, "from", now.Add(overlap))
		st.next, st.nextFrom = &b, now.Add(overlap)
		return st, true, nil
	case st.previousCA != nil && !now.Before(st.previousUntil):
		st.previousCA, st.previousUntil = nil, time.Time{}
		return st, true, nil
	}
	return st, false, nil
}

// writeFiles writes the serving pair into dir, where the server reads it,
// key first, each through a rename so that no reader sees half a file.
func writeFiles(dir string, b bundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{PrivKeyKey, b.key}, {CertKey, b.cert}} {
		path := filepath.Join(dir, f.name)
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

// injectCA makes every webhook of WebhookConfig trust the CAs. Replicas
// starting together inject at once: a write that lost to another's is
// read again and retried.
func (r *Rotator) injectCA(ctx context.Context, ca []byte) error {
	for range 5 {
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
		err := r.Client.Patch(ctx, cfg, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err):
			continue
		default:
			return fmt.Errorf("injecting the CA into ValidatingWebhookConfiguration %s: %w", r.WebhookConfig, err)
		}
	}
	return fmt.Errorf("ValidatingWebhookConfiguration %s keeps changing", r.WebhookConfig)
}

// Timing is how long self-issued certificates last, how long before their
// end they are renewed, and how often every replica checks.
type Timing struct {
	Validity, RenewBefore, Interval time.Duration
}

// Check says whether a renewal with this timing can overlap. The next CA
// is published at most one check after the renewal window opens, served
// two checks later, and the last replica moves to it one check after
// that: the window must hold four checks, and a certificate must outlive
// its window by at least one, or it would be renewed at every check.
func (t Timing) Check() error {
	switch {
	case t.Interval < time.Second:
		return fmt.Errorf("the check interval (%s) must be at least 1s", t.Interval)
	case t.RenewBefore < 4*t.Interval:
		return fmt.Errorf("renewal must start at least four check intervals (%s) before the end, not %s: the next CA is trusted for two checks before it is served, and replicas check out of step", 4*t.Interval, t.RenewBefore)
	case t.Validity < t.RenewBefore+t.Interval:
		return fmt.Errorf("a certificate valid for %s would be renewed at every check: its validity must exceed the renewal window (%s) by at least one check interval (%s)", t.Validity, t.RenewBefore, t.Interval)
	}
	return nil
}
