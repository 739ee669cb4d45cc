package keyview

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	keywardenv1alpha1 "keywarden.dev/keywarden/api/v1alpha1"
)

// Clean makes text that anyone who may write an APIKey chose safe to put
// on a person's terminal: control characters (escape sequences that would
// move the cursor, rewrite earlier lines or set the window title, and
// line breaks that would forge rows) are shown escaped, as Go quotes them,
// and so are backslashes, so that an escape shown is never text that
// merely looks like one.
func Clean(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r == '\\' || unicode.IsControl(r) || r == unicode.ReplacementChar || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}

func cell(s string) string {
	if s == "" {
		return "-"
	}
	return Clean(s)
}

// maxCell is the widest a table cell gets: a long text wraps no row.
const maxCell = 60

// tableCell is a cell of the list, cut to maxCell characters.
func tableCell(s string) string {
	s = cell(s)
	if r := []rune(s); len(r) > maxCell {
		return string(r[:maxCell-1]) + "…"
	}
	return s
}

// TableOptions shape the list.
type TableOptions struct {
	// AllNamespaces adds the NAMESPACE column.
	AllNamespaces bool
	// Wide adds CLASS and SCOPES.
	Wide bool
	// Now is the time EXPIRED is judged at; the clock's when zero.
	Now time.Time
	// Roles present roles as their classes name them for people.
	Roles RoleNames
}

// Table writes the keys as the list shows them, in the order given: the
// columns of the reference products' lists (prefix, name with its
// description, created, expires, whether it has expired, whether it is
// revoked, last use to the second).
func Table(w io.Writer, keys []keywardenv1alpha1.APIKey, o TableOptions) error {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := []string{"NAME", "PREFIX", "DISPLAY NAME / DESCRIPTION", "OWNER", "ROLE", "CREATED", "EXPIRES", "EXPIRED", "REVOKED", "LAST USED", "STATUS"}
	if o.AllNamespaces {
		head = append([]string{"NAMESPACE"}, head...)
	}
	if o.Wide {
		head = append(head, "CLASS", "SCOPES")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for i := range keys {
		k := &keys[i]
		row := []string{cell(k.Name), cell(k.Status.KeyPrefix), tableCell(NameAndDescription(k)), tableCell(k.GrantedOwner()), tableCell(o.Roles.Of(k)),
			k.CreationTimestamp.Local().Format(TimeFormat), Expires(k), yesNo(HasExpired(k, now)), yesNo(Revoked(k)), LastUsed(k), Status(k)}
		if o.AllNamespaces {
			row = append([]string{cell(k.Namespace)}, row...)
		}
		if o.Wide {
			row = append(row, tableCell(k.GrantedClass()), tableCell(joinScopes(Scopes(k))))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func joinScopes(s []keywardenv1alpha1.Scope) string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = string(x)
	}
	return strings.Join(out, ",")
}

// Condition says a condition in words: what it means for the key, then the
// controller's message and reason.
func Condition(c metav1.Condition) string {
	var meaning string
	yes := c.Status == metav1.ConditionTrue
	switch c.Type {
	case keywardenv1alpha1.ConditionReady:
		meaning = map[bool]string{true: "the key is issued and verifies", false: "the key does not verify"}[yes]
	case keywardenv1alpha1.ConditionReconciling:
		meaning = map[bool]string{true: "the controller is working on the key", false: "the controller has nothing to do"}[yes]
	case keywardenv1alpha1.ConditionStalled:
		meaning = map[bool]string{true: "the key needs a person: the controller cannot go on without a change", false: "nothing blocks the key"}[yes]
	case keywardenv1alpha1.ConditionClassCompliant:
		meaning = map[bool]string{true: "the key fits its class", false: "the key no longer fits its class (it stays valid)"}[yes]
	case keywardenv1alpha1.ConditionExpiringSoon:
		meaning = map[bool]string{true: "the key expires soon", false: "the key is not near its expiry"}[yes]
	default:
		meaning = c.Type + " is " + string(c.Status)
	}
	s := meaning
	// A message that only says the meaning again is not said twice.
	if msg := Clean(c.Message); msg != "" && !strings.EqualFold(strings.TrimSuffix(msg, "."), meaning) {
		s += ". " + msg
	}
	if c.Reason != "" {
		s += " (" + Clean(c.Reason) + ")"
	}
	return s
}

// Details is what show prints about a key: the key, its class (nil when it
// has none or may not be read) and its events.
type Details struct {
	Key   *keywardenv1alpha1.APIKey
	Class *keywardenv1alpha1.APIKeyClass
	// ClassNote says why the class could not be read, when it could not.
	ClassNote string
	Events    []corev1.Event
	// EventsNote says why there are no events to show, when they could
	// not be read.
	EventsNote string
}

// Show writes a key's details for a person.
func Show(w io.Writer, d Details, now time.Time) error {
	k := d.Key
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(label, value string) { fmt.Fprintf(tw, "%s:\t%s\n", label, value) }
	line("Name", k.Namespace+"/"+k.Name)
	line("Display name", cell(k.Spec.DisplayName))
	if k.Spec.Description != "" {
		line("Description", Clean(k.Spec.Description))
	}
	line("Status", Status(k))
	line("Prefix", cell(k.Status.KeyPrefix))
	owner := cell(k.GrantedOwner())
	if k.Status.Owner != "" && k.Spec.Owner != k.Status.Owner {
		owner += " (the spec asks for " + Clean(k.Spec.Owner) + ", not admitted)"
	}
	line("Owner", owner)
	role := cell(RoleOf(d.Class, k.GrantedRole()))
	switch {
	case k.Ungranted():
		role = "none, so the key verifies no request (the spec asks for " + Clean(k.Spec.Role) + ", not admitted)"
	case k.Status.Role != "" && k.Spec.Role != k.Status.Role:
		role += " (the spec asks for " + Clean(k.Spec.Role) + ", not admitted)"
	}
	line("Role", role)
	line("Class", cell(k.GrantedClass()))
	line("Created", k.CreationTimestamp.Local().Format(TimeFormat))
	if k.Status.IssuedAt != nil {
		line("Issued", k.Status.IssuedAt.Local().Format(TimeFormat))
	}
	exp := Expires(k)
	if k.Status.ExpiresAt != nil {
		exp += " (" + Relative(k.Status.ExpiresAt.Time, now) + ")"
	}
	line("Expires", exp)
	line("Last used", LastUsed(k))
	switch phase := Phase(k); {
	case phase == keywardenv1alpha1.PhaseExpired || phase == keywardenv1alpha1.PhaseRevoked:
		line("Secret", "deleted with the key")
	case k.Status.SecretRef != nil:
		line("Secret", k.Status.SecretRef.Name+" (field "+keywardenv1alpha1.SecretKeyField+")")
	default:
		secret := k.Spec.SecretName
		if secret == "" {
			secret = k.Name
		}
		line("Secret", secret+" (not written yet)")
	}
	if r := k.Spec.Rotation; r != nil || k.Status.Rotation != nil {
		line("Rotation", rotation(k, now))
	}
	if k.Status.Revocation != nil {
		line("Revoked by", Clean(k.Status.Revocation.Reason)+" at "+k.Status.Revocation.At.Local().Format(TimeFormat)+": "+Clean(k.Status.Revocation.Message))
	} else if k.Status.RevokedAt != nil {
		line("Revoked", k.Status.RevokedAt.Local().Format(TimeFormat))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Scopes:")
	scopes := Scopes(k)
	if len(scopes) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	if d.ClassNote != "" {
		fmt.Fprintf(w, "  (%s)\n", Clean(d.ClassNote))
	}
	descriptions := ScopeDescriptions(d.Class, k.GrantedRole())
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, s := range scopes {
		fmt.Fprintf(tw, "  %s\t%s\n", Clean(string(s)), Clean(descriptions[s]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Conditions:")
	if len(k.Status.Conditions) == 0 {
		fmt.Fprintln(w, "  (none: the controller has not seen the key)")
	}
	for _, c := range k.Status.Conditions {
		fmt.Fprintf(w, "  %s: %s\n", c.Type, Condition(c))
	}

	fmt.Fprintln(w, "History (recorded by the controller in the key's status):")
	if len(k.Status.History) == 0 {
		fmt.Fprintln(w, "  (none yet)")
	}
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, h := range k.Status.History {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", h.At.Local().Format(TimeFormat), cell(h.Event), Clean(h.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "Events (unverified: anyone who may create Events in the namespace can write one):")
	switch {
	case d.EventsNote != "":
		fmt.Fprintf(w, "  (%s)\n", Clean(d.EventsNote))
	case len(d.Events) == 0:
		fmt.Fprintln(w, "  (none)")
	}
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, e := range d.Events {
		reporter := e.ReportingController
		if reporter == "" {
			reporter = e.Source.Component
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t(%s)\n", eventTime(e).Local().Format(TimeFormat), cell(e.Type), cell(e.Reason), Clean(e.Message), cell(reporter))
	}
	return tw.Flush()
}

// ScopeDescriptions are what the class says each scope of the role lets a
// key do; none without a class.
func ScopeDescriptions(c *keywardenv1alpha1.APIKeyClass, role string) map[keywardenv1alpha1.Scope]string {
	out := map[keywardenv1alpha1.Scope]string{}
	if c == nil {
		return out
	}
	for _, r := range c.Spec.Roles {
		if r.Name != role {
			continue
		}
		for _, d := range r.ScopeDescriptions {
			out[d.Scope] = d.Description
		}
	}
	return out
}

func rotation(k *keywardenv1alpha1.APIKey, now time.Time) string {
	var parts []string
	if r := k.Spec.Rotation; r != nil && r.Every != nil {
		parts = append(parts, "every "+Days(r.Every.Duration))
	}
	if r := k.Spec.Rotation; r != nil && r.GracePeriod != nil {
		parts = append(parts, "grace "+Days(r.GracePeriod.Duration))
	}
	if st := k.Status.Rotation; st != nil {
		if st.LastRotatedAt != nil {
			parts = append(parts, "last rotated "+st.LastRotatedAt.Local().Format(TimeFormat))
		}
		if st.Next != nil {
			parts = append(parts, "rotating now (next key "+Clean(st.Next.KeyPrefix)+")")
		}
		for _, p := range st.Previous {
			state := "valid until " + p.ValidUntil.Local().Format(TimeFormat)
			if !p.ValidUntil.After(now) {
				state = "refused since " + p.ValidUntil.Local().Format(TimeFormat)
			}
			parts = append(parts, "previous key "+Clean(p.KeyPrefix)+" "+state)
		}
	}
	if len(parts) == 0 {
		return "on request"
	}
	return strings.Join(parts, "; ")
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// EventTime is when an event last happened, as its writer says.
func EventTime(e corev1.Event) time.Time { return eventTime(e) }

// RecentEvents are the last n events in the order the API server received
// them (creationTimestamp, which it sets), oldest first: anyone who may
// write Events in the namespace can write one about a key, and times it
// chooses would let it push the key's own events out of the list.
func RecentEvents(events []corev1.Event, n int) []corev1.Event {
	events = append([]corev1.Event(nil), events...)
	sort.SliceStable(events, func(i, j int) bool {
		return events[i].CreationTimestamp.Before(&events[j].CreationTimestamp)
	})
	if len(events) > n {
		events = events[len(events)-n:]
	}
	return events
}

// Relative says when t is from now, coarsely: "in 14 days", "3 minutes ago".
func Relative(t, now time.Time) string {
	d := t.Sub(now) // saturated at the bounds of a Duration
	if d >= 0 {
		return "in " + Approx(d)
	}
	if d == math.MinInt64 {
		d++ // so that it can be negated
	}
	return Approx(-d) + " ago"
}

// Approx writes a duration coarsely, to the nearest day, hour, minute or
// second: a key created a second ago for 14 days expires "in 14 days".
func Approx(d time.Duration) string {
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{24 * time.Hour, "days"}, {time.Hour, "hours"}, {time.Minute, "minutes"}} {
		// From a little under two units: 47h is "2 days", 36h "36 hours".
		if d >= 2*u.unit-u.unit/24 {
			return strconv.Itoa(int(d.Round(u.unit)/u.unit)) + " " + u.name
		}
	}
	if n := int(d.Round(time.Second) / time.Second); n != 1 {
		return strconv.Itoa(n) + " seconds"
	}
	return "1 second"
}
