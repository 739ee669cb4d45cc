// Package near finds the name someone probably meant: the closest of the
// names that exist, by edit distance, when it is near enough to be a slip.
package near

// Closest is the name nearest to s, if near enough to be a slip: at most a
// third of its length away (one edit for the shortest), and at most 3
// edits; "" when none is, or when s itself is one of the names.
func Closest(s string, names []string) string {
	best, bestD := "", min(3, max(1, len(s)/3))+1
	for _, n := range names {
		if n == s {
			return ""
		}
		if d := Distance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// Distance is the edit distance between a and b, in bytes (the names
// compared are Kubernetes names, ASCII): insertions, deletions,
// substitutions and transpositions of neighbours, each one edit.
func Distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
