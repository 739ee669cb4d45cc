package verifier

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"keywarden.dev/keywarden/pkg/verify"
)

func TestVerifierTrustFlags(t *testing.T) {
	tests := []struct {
		namespaces, classes string
		want                verify.Trust
		err                 string
	}{
		{"", "", verify.Trust{}, ""},
		{"shop, billing ,", "", verify.Trust{Namespaces: []string{"shop", "billing"}}, ""},
		{"", "payments", verify.Trust{Classes: []string{"payments"}}, ""},
		{"shop", "payments,ops", verify.Trust{Namespaces: []string{"shop"}, Classes: []string{"payments", "ops"}}, ""},
		{"*", "", verify.Trust{AnyNamespace: true}, ""},
		{"*,shop", "", verify.Trust{}, "goes alone"},
		{"*", "payments", verify.Trust{}, "goes alone"},
		{"", "*", verify.Trust{}, `does not take "*"`},
	}
	for _, tt := range tests {
		got, err := (&Options{TrustedNamespaces: tt.namespaces, TrustedClasses: tt.classes}).trust()
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("namespaces %q classes %q: error %v, want one saying %q", tt.namespaces, tt.classes, err, tt.err)
		case tt.err == "" && (err != nil || !reflect.DeepEqual(got, tt.want)):
			t.Errorf("namespaces %q classes %q = %+v, %v; want %+v", tt.namespaces, tt.classes, got, err, tt.want)
		}
	}
}

// TestVerifierOptions: the flags as the binary parses them, each problem
// named.
func TestVerifierOptions(t *testing.T) {
	tests := []struct {
		args []string
		err  string
	}{
		{nil, ""},
		{[]string{"--verifier-report-budget=500ms"}, ""},
		{[]string{"--verifier-report-budget=10ms"}, "--verifier-report-budget must be between 100ms"},
		{[]string{"--verifier-report-budget=1m"}, "--verifier-report-budget must be between 100ms"},
		{[]string{"--verifier-report-budget=6s"}, "within the server's write timeout"},
		{[]string{"--verifier-bind-address=0"}, "the verifier has nothing else to do"},
		{[]string{"--verifier-certs=self", "--verifier-tls-cert-file=a", "--verifier-tls-key-file=b"}, "drop --verifier-tls-cert-file"},
		{[]string{"--last-used-interval=0s"}, "--last-used-interval must be positive"},
	}
	for _, tt := range tests {
		o := &Options{}
		fs := pflag.NewFlagSet("verifier", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		err := o.Validate()
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%v: %v", tt.args, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%v: %v, want an error saying %q", tt.args, err, tt.err)
		}
	}
}

// TestMaxStalenessDefault: a verifier installed as shipped stops answering
// from an index it cannot know to be current after a bounded time.
func TestMaxStalenessDefault(t *testing.T) {
	if got := NewOptions().MaxStaleness; got <= 0 || got > 10*time.Minute {
		t.Errorf("--verifier-max-staleness defaults to %s: want a finite bound of minutes", got)
	}
}
