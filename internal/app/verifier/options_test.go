package verifier

import (
	"reflect"
	"strings"
	"testing"

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
