package policy

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

func TestEffectiveExpiry(t *testing.T) {
	issued := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	abs := metav1.NewTime(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name     string
		spec     keywardenv1alpha1.APIKeySpec
		issued   *metav1.Time
		recorded *metav1.Time
		want     *time.Time
	}{
		{"no expiry", keywardenv1alpha1.APIKeySpec{}, &issued, nil, nil},
		{"absolute", keywardenv1alpha1.APIKeySpec{ExpiresAt: &abs}, &issued, nil, &abs.Time},
		{"absolute before issuance", keywardenv1alpha1.APIKeySpec{ExpiresAt: &abs}, nil, nil, &abs.Time},
		{"lifetime", keywardenv1alpha1.APIKeySpec{Lifetime: &keywardenv1alpha1.Duration{Duration: 720 * time.Hour}}, &issued, nil, new(issued.Add(720 * time.Hour))},
		{"lifetime before issuance", keywardenv1alpha1.APIKeySpec{Lifetime: &keywardenv1alpha1.Duration{Duration: time.Hour}}, nil, nil, nil},
		{"class default recorded at issuance", keywardenv1alpha1.APIKeySpec{}, &issued, &abs, &abs.Time},
		{"spec wins over the recorded expiry", keywardenv1alpha1.APIKeySpec{Lifetime: &keywardenv1alpha1.Duration{Duration: time.Hour}}, &issued, &abs, new(issued.Add(time.Hour))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EffectiveExpiry(&tt.spec, tt.issued, tt.recorded)
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("EffectiveExpiry = %v, want nil", got)
			case tt.want != nil && (got == nil || !got.Time.Equal(*tt.want)):
				t.Fatalf("EffectiveExpiry = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name string
		exp  *metav1.Time
		now  time.Time
		want bool
	}{
		{"no expiry", nil, at.Time, false},
		{"before", &at, at.Add(-time.Nanosecond), false},
		{"at", &at, at.Time, true},
		{"after", &at, at.Add(time.Second), true},
	}
	for _, tt := range tests {
		if got := Expired(tt.exp, tt.now); got != tt.want {
			t.Errorf("%s: Expired = %v, want %v", tt.name, got, tt.want)
		}
	}
}
