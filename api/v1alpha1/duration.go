package v1alpha1

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Duration is a length of time, written as a Go duration (90m, 720h,
// 1h30m) or in whole days or weeks (30d, 2w). The API server takes at most
// 99999 days, 9999 weeks, or a Go duration with its parts in order (hours,
// minutes, seconds, ms, µs, ns), each at most 6, 7, 9, 12, 15 and 18 digits
// long: together they stay under what a Go duration holds (292 years), so
// no rule that reads one meets a conversion error. It is kept as it was
// written, so that what a manifest applies is what the API server stores
// and shows, and a GitOps tool sees no drift.
//
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,6}([.][0-9]+)?h([0-9]{1,7}([.][0-9]+)?m)?([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,7}([.][0-9]+)?m([0-9]{1,9}([.][0-9]+)?s)?([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,9}([.][0-9]+)?s([0-9]{1,12}([.][0-9]+)?ms)?([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,12}([.][0-9]+)?ms([0-9]{1,15}([.][0-9]+)?(us|µs))?([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,15}([.][0-9]+)?(us|µs)([0-9]{1,18}([.][0-9]+)?ns)?|[0-9]{1,18}([.][0-9]+)?ns|[1-9][0-9]{0,4}d|[1-9][0-9]{0,3}w)$')",message="write a duration as whole days (30d, at most 99999d), whole weeks (2w, at most 9999w), or hours, minutes and seconds in that order (720h, 1h30m, 90s; at most 999999h)"
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

var dayForm = regexp.MustCompile(`^(?:([1-9][0-9]{0,4})(d)|([1-9][0-9]{0,3})(w))$`)

// ParseDuration reads a Duration as the API accepts it: a Go duration, or
// a whole number of days (at most 99999) or weeks (at most 9999).
func ParseDuration(s string) (Duration, error) {
	if m := dayForm.FindStringSubmatch(s); m != nil {
		n, unit := m[1], Day
		if m[4] == "w" {
			n, unit = m[3], Week
		}
		days, _ := strconv.Atoi(n) // at most five digits of days, four of weeks
		return Duration{Duration: time.Duration(days) * unit, Written: s}, nil
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
