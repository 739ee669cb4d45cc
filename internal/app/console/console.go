// Package console assembles the console component (`keywarden console`):
// the web console of internal/console, which holds no rights of its own and
// acts on every request with the token of the person signed in.
package console

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"

	"keywarden.dev/keywarden/internal/app/options"
	"keywarden.dev/keywarden/internal/console"
	"keywarden.dev/keywarden/internal/limits"
)

// Options are everything the console is run with: `keywarden console`'s
// flags.
type Options struct {
	// Address is where the console listens, plain HTTP; /healthz is its
	// probe.
	Address    string
	SessionTTL time.Duration
	// TrustAuthorizationHeader acts with the bearer token of each
	// request's Authorization header, set by an authenticating proxy.
	TrustAuthorizationHeader bool
	// TrustedProxies is --console-trusted-proxies, as given.
	TrustedProxies string
	trusted        []netip.Prefix
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	o := &Options{}
	o.AddFlags(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	return o
}

// AddFlags binds the options to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Address, "console-bind-address", ":8095",
		"Address of the web console (plain HTTP: put it behind TLS, such as an Ingress or an authenticating proxy, except on loopback). "+
			"The console has no rights of its own: people sign in with their Kubernetes bearer token, and it acts with it.")
	fs.DurationVar(&o.SessionTTL, "console-session-ttl", 8*time.Hour, "How long a sign-in to the console lasts (never past its token's expiry).")
	fs.BoolVar(&o.TrustAuthorizationHeader, "console-trust-authorization-header", false,
		"Act with the bearer token of each request's Authorization header, as an authenticating proxy in front of the console sets it, instead of a sign-in. Only when every request reaches the console through that proxy.")
	fs.StringVar(&o.TrustedProxies, "console-trusted-proxies", "",
		"Comma-separated CIDRs of the proxies in front of the console (an Ingress controller's pods): sign-ins through them are limited by the client address their X-Forwarded-For gives, not by the proxy's, which every client would share.")
}

// Validate checks the options.
func (o *Options) Validate() error {
	if err := options.CheckAddress("console-bind-address", o.Address); err != nil {
		return err
	}
	if o.Address == "0" {
		return errors.New("--console-bind-address=0: the console serves nothing else; do not run it instead")
	}
	if o.SessionTTL <= 0 {
		return fmt.Errorf("--console-session-ttl must be positive, not %s", o.SessionTTL)
	}
	trusted, err := limits.ParsePrefixes(o.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--console-trusted-proxies: %w", err)
	}
	o.trusted = trusted
	return nil
}

// Run serves the console until ctx ends. The client configuration gives
// only the API server's address and CA: its credentials are dropped.
func Run(ctx context.Context, o *Options) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	c, err := console.New(console.Options{Config: cfg, SessionTTL: o.SessionTTL, TrustAuthorizationHeader: o.TrustAuthorizationHeader,
		TrustedProxies: o.trusted, ControllerNamespace: options.OwnNamespace(), Log: ctrl.Log.WithName("console")})
	if err != nil {
		return fmt.Errorf("setting up the console: %w", err)
	}
	return c.Run(ctx, o.Address)
}
