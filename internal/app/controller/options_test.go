package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestOptions: the defaults are valid, and flags that cannot work, alone
// or together, are refused at start with every problem named.
func TestOptions(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string // substrings of the error; none for a valid set
	}{
		{nil, nil},
		{[]string{"--verifier-certs=self", "--leader-elect"}, nil},
		{[]string{"--verifier-certs=files"}, []string{`invalid argument "files"`}},
		{[]string{"--verifier-certs=self", "--verifier-tls-secret=keywarden-verifier-cert"}, []string{"--verifier-tls-secret must differ from --verifier-cert-secret"}},
		{[]string{"--verifier-certs=self", "--verifier-ca-configmap="}, []string{"--verifier-certs=self needs"}},
		{[]string{"--self-issued-cert-renew-before=1h"}, []string{"renewal must start at least four check intervals"}},
		{[]string{"--max-concurrent-reconciles=0", "--kube-api-qps=0"}, []string{"--max-concurrent-reconciles must be at least 1", "--kube-api-qps and --kube-api-burst must be positive"}},
		{[]string{"--enable-webhook", "--webhook-certs=cert-manager"}, []string{"--webhook-certs must be self or files"}},
		{[]string{"--health-probe-bind-address="}, []string{"--health-probe-bind-address is empty"}},
		{[]string{"--scheduled-rotations-per-second=0"}, []string{"--scheduled-rotations-per-second must be above 0"}},
		{[]string{"--scheduled-rotations-per-second=0.5"}, nil},
	} {
		o := &Options{}
		fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
		o.AddFlags(fs)
		err := fs.Parse(tt.args)
		if err == nil {
			err = o.Validate()
		}
		switch {
		case len(tt.want) == 0 && err != nil:
			t.Errorf("%v: %v", tt.args, err)
		case len(tt.want) > 0 && err == nil:
			t.Errorf("%v: accepted", tt.args)
		case err != nil:
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: %q does not say %q", tt.args, err, w)
				}
			}
		}
	}
	if o := NewOptions(); o.CertTiming.Interval != time.Hour || o.VerifierCert.TLSSecret != "keywarden-verifier-tls" || o.VerifierCert.Issue {
		t.Errorf("defaults: %+v", o)
	}
}
