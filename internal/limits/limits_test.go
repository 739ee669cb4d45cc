package limits

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestSource(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:443":                     "192.0.2.1",
		"[::ffff:192.0.2.1]:443":            "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":        "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:ffff:ffff:1]:1": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:1":               "2001:db8:1:3::/64",
		"[fe80::1%eth0]:1":                  "fe80::/64",
		"192.0.2.9":                         "192.0.2.9",
		"@":                                 "@", // a Unix socket's peer
	} {
		if got := Source(addr); got != want {
			t.Errorf("Source(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestPerSourceForgetsTheLeastRecent: past Sources, the source seen least
// recently is forgotten (a flood of new sources cannot keep a limited
// one's bucket full, nor grow the table).
func TestPerSourceForgetsTheLeastRecent(t *testing.T) {
	const sources = 100
	p := &PerSource{Rate: 1, Burst: 3, Sources: sources}
	now := time.Unix(1_800_000_000, 0)
	for range 3 {
		p.Allow("flooder", now)
	}
	if p.Allow("flooder", now) {
		t.Fatal("a source past its burst allowed")
	}
	for i := range sources - 1 {
		p.Allow(fmt.Sprintf("other-%d", i), now)
	}
	p.Allow("flooder", now) // seen again: the most recent
	p.Allow("one-more", now)
	if n := p.Followed(); n != sources {
		t.Fatalf("%d sources followed, want %d", n, sources)
	}
	if _, ok := p.m["other-0"]; ok {
		t.Error("the least recently seen source was kept")
	}
	if p.Allow("flooder", now) {
		t.Error("a limited source seen recently was forgotten")
	}
	for i := range sources {
		p.Allow(fmt.Sprintf("new-%d", i), now)
	}
	if !p.Allow("flooder", now) {
		t.Error("a source not seen among the last ones still limited")
	}
}

// TestPerSourceGlobal: sources that each stay within their own limit are
// held to the global one together.
func TestPerSourceGlobal(t *testing.T) {
	p := &PerSource{Rate: 1, Burst: 1, Sources: 1000, Global: rate.NewLimiter(1, 10)}
	now := time.Unix(1_800_000_000, 0)
	allowed := 0
	for i := range 50 {
		if p.Allow(fmt.Sprintf("s-%d", i), now) {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("%d of 50 sources allowed at once, want the global burst of 10", allowed)
	}
	if !p.Allow("late", now.Add(time.Second)) {
		t.Error("the global budget does not refill")
	}

	// A source the global limit refused keeps its own token.
	slow := &PerSource{Rate: rate.Every(time.Hour), Burst: 1, Sources: 10, Global: rate.NewLimiter(1, 1)}
	slow.Allow("other", now) // takes the global token
	if slow.Allow("patient", now) {
		t.Fatal("allowed past the global limit")
	}
	if !slow.Allow("patient", now.Add(time.Second)) {
		t.Error("a source refused by the global limit lost its own token")
	}
}

func TestClient(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, peer, xff string
		trusted         bool
		want            string
	}{
		{"no trusted proxies: the peer, whatever it claims", "10.1.1.1:1", "198.51.100.1", false, "10.1.1.1:1"},
		{"a peer not trusted: its own address", "203.0.113.5:1", "198.51.100.1", true, "203.0.113.5:1"},
		{"through a trusted proxy: the client it saw", "10.1.1.1:1", "198.51.100.1", true, "198.51.100.1"},
		{"a client's own claim before it is not believed", "10.1.1.1:1", "1.2.3.4, 198.51.100.1", true, "198.51.100.1"},
		{"through two trusted proxies", "10.1.1.1:1", "198.51.100.1, 192.0.2.7", true, "198.51.100.1"},
		{"no header: the proxy", "10.1.1.1:1", "", true, "10.1.1.1:1"},
		{"garbage after the client: the proxy", "10.1.1.1:1", "198.51.100.1, not-an-address", true, "10.1.1.1:1"},
	} {
		r, _ := http.NewRequest("POST", "/login", nil)
		r.RemoteAddr = tt.peer
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		var tr []netip.Prefix
		if tt.trusted {
			tr = trusted
		}
		if got := Client(r, tr); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if _, err := ParsePrefixes("10.0.0.0/8,nope"); err == nil {
		t.Error("a bad CIDR accepted")
	}
}
