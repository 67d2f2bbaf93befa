package attempts

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func TestAttemptBurstThenThrottled(t *testing.T) {
	c := newClock()
	l := New(Options{Burst: 3, Interval: 10 * time.Second, Now: c.now})
	const addr = "203.0.113.7:51000"
	for i := range 3 {
		if th, _ := l.Attempt(addr, false); th {
			t.Fatalf("wrong try %d throttled, want the first 3 counted only", i+1)
		}
	}
	th, retry := l.Attempt(addr, false)
	if !th || retry != 10*time.Second {
		t.Fatalf("4th wrong try = throttled %v, retry %v; want true, 10s", th, retry)
	}
	// Throttled, a right secret is refused too: a guess tells nothing.
	if th, _ := l.Attempt(addr, true); !th {
		t.Fatal("right secret from a throttled address allowed, want refused")
	}
	// Another port of the same host is the same client.
	if th, _ := l.Attempt("203.0.113.7:40000", true); !th {
		t.Fatal("another port of a throttled host allowed")
	}
	// Another address is not affected.
	if th, _ := l.Attempt("203.0.113.8:51000", true); th {
		t.Fatal("a right secret from another address throttled")
	}
	c.add(4 * time.Second)
	if th, retry := l.Attempt(addr, true); !th || retry != 6*time.Second {
		t.Fatalf("after 4s = throttled %v, retry %v; want true, 6s", th, retry)
	}
	c.add(6 * time.Second)
	if th, _ := l.Attempt(addr, true); th {
		t.Fatal("right secret after one interval throttled, want allowed")
	}
	// One attempt regained, and a right secret spent nothing of it.
	if th, _ := l.Attempt(addr, false); th {
		t.Fatal("wrong try after one interval throttled, want counted")
	}
	if th, _ := l.Attempt(addr, false); !th {
		t.Fatal("second wrong try after one interval allowed, want throttled")
	}
}

func TestSuccessGivesNothingBack(t *testing.T) {
	c := newClock()
	l := New(Options{Burst: 2, Interval: time.Minute, Now: c.now})
	const addr = "198.51.100.1:1"
	l.Attempt(addr, false)
	for range 100 {
		if th, _ := l.Attempt(addr, true); th {
			t.Fatal("right secret throttled with one attempt left")
		}
	}
	l.Attempt(addr, false)
	if th, _ := l.Attempt(addr, false); !th {
		t.Fatal("successes in between gave attempts back")
	}
}

func TestIPv6CountsBySlash64(t *testing.T) {
	c := newClock()
	l := New(Options{Burst: 2, Interval: time.Minute, Now: c.now})
	l.Attempt("[2001:db8:1:2::1]:443", false)
	l.Attempt("[2001:db8:1:2:ffff::9]:443", false)
	if th, _ := l.Attempt("[2001:db8:1:2:abcd::1%eth0]:1", true); !th {
		t.Fatal("another address in the same /64 not throttled")
	}
	if th, _ := l.Attempt("[2001:db8:1:3::1]:443", true); th {
		t.Fatal("another /64 throttled")
	}
	// An IPv4-mapped IPv6 address is the IPv4 client.
	l.Attempt("192.0.2.1:1", false)
	l.Attempt("192.0.2.1:2", false)
	if th, _ := l.Attempt("[::ffff:192.0.2.1]:3", true); !th {
		t.Fatal("IPv4-mapped form of a throttled IPv4 address not throttled")
	}
}

func TestTableBounded(t *testing.T) {
	c := newClock()
	l := New(Options{Burst: 2, Interval: time.Minute, MaxAddrs: 4, Now: c.now})
	for i := range 4 {
		l.Attempt(fmt.Sprintf("10.0.0.%d:1", i), false)
	}
	// The table is full of spent budgets: new addresses share one.
	for i := 10; i < 12; i++ {
		if th, _ := l.Attempt(fmt.Sprintf("10.0.0.%d:1", i), false); th {
			t.Fatalf("address %d throttled before the shared budget was spent", i)
		}
	}
	if th, _ := l.Attempt("10.0.0.99:1", false); !th {
		t.Fatal("a flood of new addresses escaped the throttle")
	}
	if len(l.addrs) > 4 {
		t.Fatalf("table holds %d addresses, want at most 4", len(l.addrs))
	}
	// Once the tracked budgets refill, they are forgotten for new ones.
	c.add(2 * time.Minute)
	if th, _ := l.Attempt("10.0.0.50:1", false); th {
		t.Fatal("new address throttled after the table's budgets refilled")
	}
	if _, ok := l.addrs[key("10.0.0.50:1")]; !ok {
		t.Fatal("new address not tracked after refilled ones were forgotten")
	}
}

func TestNonIPAddressesShareOneBudget(t *testing.T) {
	l := New(Options{Burst: 1, Interval: time.Minute})
	l.Attempt("pipe", false)
	if th, _ := l.Attempt("@", true); !th {
		t.Fatal("non-IP remote addresses do not share a budget")
	}
}

// Guesses sent at once get no more than the budget between them.
func TestAttemptConcurrent(t *testing.T) {
	c := newClock()
	l := New(Options{Burst: 10, Interval: time.Hour, Now: c.now})
	var counted, throttled atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				addr := "203.0.113.9:1"
				if i%5 == 0 {
					addr = fmt.Sprintf("[2001:db8:%x::1]:1", g) // others, concurrently
				}
				th, _ := l.Attempt(addr, false)
				if addr == "203.0.113.9:1" {
					if th {
						throttled.Add(1)
					} else {
						counted.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if counted.Load() != 10 || throttled.Load() != 32*40-10 {
		t.Fatalf("32 goroutines: %d wrong tries counted, %d throttled; want 10 and %d", counted.Load(), throttled.Load(), 32*40-10)
	}
}
