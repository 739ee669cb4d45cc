package v1alpha1

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "30d", want: 30 * Day},
		{in: "2w", want: 14 * Day},
		{in: "99999d", want: 99999 * Day},
		{in: "9999w", want: 9999 * Week},
		{in: "720h", want: 720 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "0s", want: 0},
		{in: "0d", bad: true},
		{in: "07d", bad: true},
		{in: "100000d", bad: true},
		{in: "1.5d", bad: true},
		{in: "10000w", bad: true}, // more weeks than a Duration holds
		{in: "30501w", bad: true},
		{in: "1d12h", bad: true},
		{in: "d", bad: true},
		{in: "30 days", bad: true},
		{in: "", bad: true},
	} {
		d, err := ParseDuration(tc.in)
		switch {
		case tc.bad && err == nil:
			t.Errorf("ParseDuration(%q) = %v, want an error", tc.in, d.Duration)
		case !tc.bad && err != nil:
			t.Errorf("ParseDuration(%q): %v", tc.in, err)
		case !tc.bad && d.Duration != tc.want:
			t.Errorf("ParseDuration(%q) = %v, want %v", tc.in, d.Duration, tc.want)
		case !tc.bad && d.String() != tc.in:
			t.Errorf("ParseDuration(%q) is written %q, not as it was read", tc.in, d.String())
		}
	}
}

// TestDurationJSON: a duration read is written back as it was (no drift
// for a GitOps tool); one made in Go is written as a Go duration, which
// earlier releases read.
func TestDurationJSON(t *testing.T) {
	type holder struct {
		D *Duration `json:"d,omitempty"`
	}
	for _, in := range []string{`{"d":"30d"}`, `{"d":"2w"}`, `{"d":"720h"}`, `{"d":"720h0m0s"}`, `{"d":"90m"}`, `{}`} {
		var h holder
		if err := json.Unmarshal([]byte(in), &h); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != in {
			t.Errorf("%s was written back as %s", in, out)
		}
	}
	for d, want := range map[time.Duration]string{
		30 * Day: `"720h0m0s"`, 14 * Day: `"336h0m0s"`, 36 * time.Hour: `"36h0m0s"`, 0: `"0s"`,
	} {
		out, err := json.Marshal(DurationOf(d))
		if err != nil || string(out) != want {
			t.Errorf("DurationOf(%v) is written %s (%v), want %s", d, out, err, want)
		}
	}
	var h holder
	if err := json.Unmarshal([]byte(`{"d":"30 days"}`), &h); err == nil {
		t.Errorf("30 days was read as %v", h.D.Duration)
	}
}

// TestDurationFormFitsGo checks the promise of Duration's CRD rule: every
// text of at most 32 characters that the API server accepts is one Go can
// read, so no rule reading it meets a conversion error and no client fails
// to decode the object. The largest texts of each unit are the test.
func TestDurationFormFitsGo(t *testing.T) {
	src, err := os.ReadFile("duration.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`XValidation:rule="self\.matches\('([^']+)'\)"`).FindSubmatch(src)
	if m == nil {
		t.Fatal("duration.go has no rule of the form self.matches('…')")
	}
	form := regexp.MustCompile(string(m[1]))
	// The largest a part can be, each part at its largest, and each part
	// repeated as far as 32 characters go.
	largest := []string{"999999.9999999999999999999999999h", "999999h9999999m999999999s", "999999h9999999m999999999s999ms",
		"9999999m999999999s999999999999ms", "999999999999999999ns", "999999999999999µs999999999999ns", "99999d", "9999w"}
	for _, s := range largest {
		if !form.MatchString(s) {
			t.Errorf("%q: the form refuses it", s)
			continue
		}
		if _, err := ParseDuration(s); err != nil {
			t.Errorf("%q: the API server would accept what Go cannot read: %v", s, err)
		}
	}
	// The sum of the largest of every part stays under Go's bound.
	var sum time.Duration
	for _, part := range []string{"999999h", "9999999m", "999999999s", "999999999999ms", "999999999999999us", "999999999999999999ns"} {
		d, err := time.ParseDuration(part)
		if err != nil || sum+d < sum {
			t.Fatalf("%s: parts add past what a Go duration holds", part)
		}
		sum += d
	}
	for _, s := range []string{"9999999999999999999999999999999h", "1000000h", "10000000m", "1000000000s", "3000000h", "30m1h", "1h1h", "", "100000d", "10000w", "-1h", "1.5d", "30 days"} {
		if form.MatchString(s) {
			t.Errorf("%q: the form accepts it", s)
		}
	}
}
