package webhookcert

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func TestGenerateAndUsable(t *testing.T) {
	names := []string{"keywarden-webhook-service.keywarden-system.svc", "127.0.0.1"}
	b, err := generate(names, t0, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A serving certificate for a year, from a CA that lasts ten days.
	shortCA, err := generateWith(names, t0, 10*24*time.Hour, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		b           bundle
		names       []string
		now         time.Time
		renewBefore time.Duration
		wantErr     string
	}{
		{"fresh", b, names, t0, 30 * 24 * time.Hour, ""},
		{"IP name", b, []string{"127.0.0.1"}, t0, 0, ""},
		{"inside the renewal window", b, names, t0.Add(340 * 24 * time.Hour), 30 * 24 * time.Hour, "expires at"},
		{"expired", b, names, t0.Add(400 * 24 * time.Hour), 0, "expired"},
		{"another name", b, []string{"other.svc"}, t0, 0, "other.svc"},
		{"empty", bundle{}, names, t0, 0, "serving key pair"},
		{"key of another pair", bundle{caCert: b.caCert, caKey: b.caKey, cert: b.cert, key: mustGenerate(t).key}, names, t0, 0, "serving key pair"},
		{"signed by another CA", bundle{caCert: mustGenerate(t).caCert, cert: b.cert, key: b.key}, names, t0, 0, "unknown authority"},
		{"a CA that expires first", shortCA, names, t0, 30 * 24 * time.Hour, "CA certificate expires at"},
		{"no CA", bundle{cert: b.cert, key: b.key}, names, t0, 0, "no CA certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.usable(tt.names, tt.now, tt.renewBefore)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("usable: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("usable = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
	if fromData(b.data()).equal(b) == false {
		t.Error("a bundle does not survive the Secret's data")
	}
}

func mustGenerate(t *testing.T) bundle {
	t.Helper()
	b, err := generate([]string{"x.svc"}, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTimingCheck(t *testing.T) {
	tests := []struct {
		name    string
		timing  Timing
		wantErr string
	}{
		{"the defaults", Timing{365 * 24 * time.Hour, 30 * 24 * time.Hour, time.Hour}, ""},
		{"short, for a test", Timing{40 * time.Second, 30 * time.Second, 2 * time.Second}, ""},
		{"the tightest window", Timing{5 * time.Second, 4 * time.Second, time.Second}, ""},
		{"checks faster than a second", Timing{time.Hour, 30 * time.Minute, 500 * time.Millisecond}, "at least 1s"},
		{"a window shorter than four checks", Timing{365 * 24 * time.Hour, 3 * time.Hour, time.Hour}, "four check intervals"},
		{"no window", Timing{365 * 24 * time.Hour, 0, time.Hour}, "four check intervals"},
		{"validity within the window", Timing{30 * 24 * time.Hour, 30 * 24 * time.Hour, time.Hour}, "renewed at every check"},
		{"validity less than a check past the window", Timing{5*time.Hour - time.Minute, 4 * time.Hour, time.Hour}, "renewed at every check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.timing.Check()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
