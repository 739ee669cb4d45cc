package webhookcert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Follower serves a certificate that a Rotator elsewhere keeps: it reads
// the Rotator's ServingSecret, which holds the serving pair alone, and
// writes it into CertDir, where a server reloads it. It needs only to read
// that one Secret: the verifier follows the certificate that the controller
// issues, publishes and renews, so that the component that faces the
// network can neither write a Secret nor publish a CA, and never holds a
// CA's key.
//
// Followers move to a renewed certificate at their next check after the
// Rotator's switch, within the overlap in which the previous CA stays
// published, provided they check at the Rotator's interval.
type Follower struct {
	// Client reads the Secret from the API server.
	Client client.Reader
	// Secret is the Rotator's ServingSecret.
	Secret types.NamespacedName
	// CertDir receives tls.crt and tls.key.
	CertDir string
	// Interval is how often the Secret is read again; an hour when zero.
	Interval time.Duration
	// Clock ticks the checks; the real clock when nil.
	Clock clock.WithTicker
	Log   logr.Logger
}

// errNotIssued says the Secret holds no certificate yet.
var errNotIssued = errors.New("holds no serving certificate yet")

// NeedLeaderElection is false: every replica serves.
func (f *Follower) NeedLeaderElection() bool { return false }

// Ensure writes the certificate the Secret holds into CertDir; it fails
// when the Secret is missing or holds none. Call it before the server
// starts (see Wait).
func (f *Follower) Ensure(ctx context.Context) error {
	s := &corev1.Secret{}
	if err := f.Client.Get(ctx, f.Secret, s); err != nil {
		return fmt.Errorf("reading Secret %s: %w", f.Secret, err)
	}
	st := stateFrom(s.Data)
	if len(st.current.cert) == 0 || len(st.current.key) == 0 {
		return fmt.Errorf("secret %s %w", f.Secret, errNotIssued)
	}
	return writeFiles(f.CertDir, st.current)
}

// Wait calls Ensure until it succeeds, every second, or until ctx ends: a
// verifier started beside the controller on a new install waits for the
// controller's first certificate.
func (f *Follower) Wait(ctx context.Context) error {
	f.defaults()
	t := f.Clock.NewTicker(time.Second)
	defer t.Stop()
	for logged := false; ; {
		err := f.Ensure(ctx)
		if err == nil {
			return nil
		}
		if !logged {
			f.Log.Info("Waiting for the serving certificate", "secret", f.Secret, "reason", err.Error())
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the serving certificate: %w (last: %w)", ctx.Err(), err)
		case <-t.C():
		}
	}
}

func (f *Follower) defaults() {
	if f.Interval == 0 {
		f.Interval = time.Hour
	}
	if f.Clock == nil {
		f.Clock = clock.RealClock{}
	}
}

// Start reads the Secret every interval until ctx ends.
func (f *Follower) Start(ctx context.Context) error {
	f.defaults()
	every(ctx, f.Clock, f.Interval, func() {
		if err := f.Ensure(ctx); err != nil {
			f.Log.Error(err, "Unable to read the serving certificate")
		}
	})
	return nil
}
