// Package attempts throttles the guessing of a secret (the admin token,
// the console's tokens) by client address. Each address may fail Burst
// times in a row; after that it regains one attempt every Interval, and
// while it has none left every attempt from it is refused before the
// secret is compared, a right one included, so a guesser learns nothing
// from a throttled try. A success gives nothing back: a client holding
// the read-only console token cannot reset its budget for guessing the
// admin one. Right secrets spend nothing, so automation calling the admin
// API with its token, however often and however many at once, is never
// throttled unless wrong tokens came from its address.
//
// Addresses are the host of the request's remote address; an IPv6
// address counts by its /64, the block one client usually holds. The table
// is bounded (Options.MaxAddrs): when it is full, addresses whose budget has
// refilled are forgotten, and if none has, new addresses share one budget,
// so a flood of addresses neither grows memory nor escapes the throttle.
// A Limiter is safe for concurrent use.
package attempts

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Options configure a Limiter. Zero values take the defaults.
type Options struct {
	// Burst is how many failures in a row an address may have; default 10.
	Burst int
	// Interval is how long an address waits to regain one attempt;
	// default 6 s (10 a minute after the burst).
	Interval time.Duration
	// MaxAddrs bounds the addresses tracked; default 4096.
	MaxAddrs int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Limiter counts failed attempts per client address.
type Limiter struct {
	opts     Options
	mu       sync.Mutex
	addrs    map[netip.Prefix]*budget
	overflow budget // shared by new addresses while the table is full
}

// budget is a token bucket of attempts.
type budget struct {
	left float64   // attempts left at last
	last time.Time // when left was computed
}

// New returns a Limiter.
func New(o Options) *Limiter {
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.Interval <= 0 {
		o.Interval = 6 * time.Second
	}
	if o.MaxAddrs <= 0 {
		o.MaxAddrs = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{opts: o, addrs: make(map[netip.Prefix]*budget), overflow: budget{left: float64(o.Burst), last: o.Now()}}
}

// Attempt records a try of a secret from the client at remoteAddr
// (host:port, as http.Request.RemoteAddr), after the secret was compared:
// right says whether it matched. A wrong secret spends one of the
// address's attempts. throttled reports that the address had none left:
// the caller refuses the request whatever the secret (a right one
// included, so a throttled guess tells the guesser nothing) and may say to
// retry after retryAfter. The spending happens under one lock with the
// check, so guesses sent at once get no more than the budget between them.
func (l *Limiter) Attempt(remoteAddr string, right bool) (throttled bool, retryAfter time.Duration) {
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.lookup(key(remoteAddr), now, !right)
	if b == nil {
		return false, 0 // a right secret from an address that never failed
	}
	l.refill(b, now)
	if b.left < 1 {
		wait := time.Duration((1 - b.left) * float64(l.opts.Interval))
		return true, max(wait, time.Second).Round(time.Second)
	}
	if !right {
		b.left--
	}
	return false, 0
}

// lookup finds k's budget. Without one, and with add, it makes a full
// one, forgetting refilled budgets, or else sharing the overflow one, when
// the table is full; without add it returns nil, or the overflow budget
// while the table is full (new addresses share it).
func (l *Limiter) lookup(k netip.Prefix, now time.Time, add bool) *budget {
	if b, ok := l.addrs[k]; ok {
		return b
	}
	if len(l.addrs) >= l.opts.MaxAddrs && add {
		for a, b := range l.addrs {
			if l.refill(b, now); b.left >= float64(l.opts.Burst) {
				delete(l.addrs, a)
			}
		}
	}
	if len(l.addrs) >= l.opts.MaxAddrs {
		return &l.overflow
	}
	if !add {
		return nil
	}
	b := &budget{left: float64(l.opts.Burst), last: now}
	l.addrs[k] = b
	return b
}

func (l *Limiter) refill(b *budget, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.left = math.Min(b.left+float64(d)/float64(l.opts.Interval), float64(l.opts.Burst))
		b.last = now
	}
}

// key is the address a budget belongs to: the IP, an IPv6 one by its /64;
// a remote address that is not an IP (a Unix socket, a test's "pipe")
// counts as one address.
func key(remoteAddr string) netip.Prefix {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}
