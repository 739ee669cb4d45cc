// Package limits holds the rate limits Keywarden's network-facing parts
// share: a bucket for each client address, of which only the most
// recently seen are kept, all held to one budget.
package limits

import (
	"container/list"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Source is the bucket of a request's remote address: an IPv4 address
// (also one mapped into IPv6) as it is, an IPv6 address its /64, which
// one subscriber commonly holds whole; without port or zone. Anything
// else (a Unix socket's peer) is its own bucket.
func Source(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return ip.String()
	}
	return p.String()
}

// Client is a request's client address: the peer's, or, when the peer
// is one of the trusted proxies, the last address of X-Forwarded-For that
// is not one of them (each proxy appends the address it received the
// request from; what comes before is the client's to write). Without
// trusted proxies, the peer's always.
func Client(r *http.Request, trusted []netip.Prefix) string {
	peer := r.RemoteAddr
	if len(trusted) == 0 || !within(peer, trusted) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if _, err := netip.ParseAddr(hop); err != nil {
			return peer // not an address: trust nothing before it
		}
		if !within(hop, trusted) {
			return hop
		}
	}
	return peer
}

// within reports whether an address (with or without a port) is in one of
// the prefixes.
func within(addr string, prefixes []netip.Prefix) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses comma-separated CIDRs (or single addresses).
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// PerSource limits requests by source, and all of them together. Past
// Sources sources the one seen least recently is forgotten, in constant
// time: a flood of new sources cannot grow it, and gains only new
// buckets, which the global limit holds.
type PerSource struct {
	// Rate and Burst are each source's limit.
	Rate  rate.Limit
	Burst int
	// Sources bounds the sources followed at once.
	Sources int
	// Global, when set, limits every request whatever its source.
	Global *rate.Limiter

	mu     sync.Mutex
	m      map[string]*list.Element
	recent list.List // of *bucket, the most recently seen first
}

type bucket struct {
	source string
	l      *rate.Limiter
}

// Allow takes a request of the source from its limit and from the global
// one, and reports whether both allowed it.
func (p *PerSource) Allow(source string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*list.Element{}
	}
	e, ok := p.m[source]
	if ok {
		p.recent.MoveToFront(e)
	} else {
		if p.recent.Len() >= max(p.Sources, 1) {
			oldest := p.recent.Back()
			p.recent.Remove(oldest)
			delete(p.m, oldest.Value.(*bucket).source)
		}
		e = p.recent.PushFront(&bucket{source: source, l: rate.NewLimiter(p.Rate, p.Burst)})
		p.m[source] = e
	}
	r := e.Value.(*bucket).l.ReserveN(now, 1)
	if !r.OK() || r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return false
	}
	if p.Global != nil && !p.Global.AllowN(now, 1) {
		// Refused by the global limit: the source keeps its token.
		r.CancelAt(now)
		return false
	}
	return true
}

// Followed is how many sources are followed now.
func (p *PerSource) Followed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recent.Len()
}
