package near

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"analytics", "web", "payments", "billing-export"}
	for _, tc := range []struct{ s, want string }{
		{"analytcs", "analytics"},
		{"wbe", "web"},
		{"billing-exprot", "billing-export"},
		{"payment", "payments"},
		{"zzz", ""},          // nothing near
		{"we", "web"},        // one letter left out
		{"web", ""},          // the name itself is not a suggestion
		{"billing", ""},      // seven edits away
		{"paymentsxxxx", ""}, // more than 3 edits
	} {
		if got := Closest(tc.s, names); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.s, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"wbe", "web", 1}} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
