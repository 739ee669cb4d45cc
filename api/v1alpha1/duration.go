package v1alpha1

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Duration is a length of time, written as a Go duration (90m, 720h,
// 1h30m) or in whole days or weeks (30d, 2w). It is kept as it was
// written, so that what a manifest applies is what the API server stores
// and shows, and a GitOps tool sees no drift.
//
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$`
type Duration struct {
	time.Duration `json:"-"`

	// Written is the text the duration was read from; empty for one made
	// in Go, which is written as a Go duration.
	Written string `json:"-"`
}

// Day and Week are the lengths of the units Duration adds to Go's.
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
)

var dayForm = regexp.MustCompile(`^([1-9][0-9]{0,4})([dw])$`)

// ParseDuration reads a Duration as the API accepts it: a Go duration, or
// a whole number of days (at most 99999) or weeks (at most 9999).
func ParseDuration(s string) (Duration, error) {
	if m := dayForm.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1]) // at most five digits
		unit := Day
		if m[2] == "w" {
			unit = Week
		}
		return Duration{Duration: time.Duration(n) * unit, Written: s}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Duration{}, fmt.Errorf("%q is not a duration: write it in days (30d), weeks (2w) or as a Go duration (720h, 90m)", s)
	}
	return Duration{Duration: d, Written: s}, nil
}

// DurationOf is d as a Duration, written as a Go duration: what a client
// writes stays readable by releases that know no days or weeks.
func DurationOf(d time.Duration) *Duration {
	return &Duration{Duration: d}
}

// String is the duration as written, or as a Go duration when it was made
// in Go.
func (d Duration) String() string {
	if d.Written != "" {
		return d.Written
	}
	return d.Duration.String()
}

// MarshalJSON writes the duration as it was written.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration in any form ParseDuration accepts.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	p, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}
