package textcache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// texts are multilingual (Arabic, Hindi, Turkish, emoji, combining
// marks), with texts that differ in one digit or in case only.
func texts(n int) []string {
	base := []string{
		"Your verification code is 482913.", "Your verification code is 482914.", "YOUR VERIFICATION CODE IS 482913.",
		"تم شحن طلبك رقم 5521 وسيصل غدا", "आपका ऑर्डर 7712 भेज दिया गया है।", "Siparişiniz 8812 kargoya verildi 🚚",
		"Cafe\u0301 ouvert demain 🙏", "", "\u200f\u200e",
	}
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		for _, b := range base {
			if len(out) < n {
				out = append(out, fmt.Sprintf("%s #%d", b, i))
			}
		}
	}
	return out
}

// f is a value that tells texts apart.
func f(s string) string { return strings.ToUpper(s) + fmt.Sprint(utf8.RuneCountInString(s)) }

// From 16 goroutines, a hit is always the value put for that very text:
// with a cache far smaller than the texts (slots replaced all the time)
// and with one that holds them all.
func TestGetReturnsWhatWasPut(t *testing.T) {
	ts := texts(3000)
	for _, size := range []int{1, 1 << 14} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			c := New[string](size)
			var wg sync.WaitGroup
			errs := make(chan string, 16)
			for g := range 16 {
				wg.Go(func() {
					for r := range 3 * len(ts) {
						msg := ts[(g*37+r*7)%len(ts)]
						k := c.Key(msg)
						got, ok := c.Get(k)
						if !ok {
							c.Put(k, f(msg))
							continue
						}
						if got != f(msg) {
							select {
							case errs <- fmt.Sprintf("Get(%q) = %q, want %q", msg, got, f(msg)):
							default:
							}
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			if st := c.Stats(); st.Hits == 0 {
				t.Errorf("Stats() = %+v, want hits", st)
			}
		})
	}
}

// A text is cached the second time it misses and hits the third time.
func TestAdmitsOnSecondSight(t *testing.T) {
	c := New[int](256)
	k := c.Key("تم شحن طلبك 📦")
	for i, want := range []Stats{{Misses: 1, Size: 256}, {Misses: 2, Size: 256}, {Hits: 1, Misses: 2, Size: 256}} {
		if _, ok := c.Get(k); !ok {
			c.Put(k, 7)
		}
		if got := c.Stats(); got != want {
			t.Errorf("after lookup #%d: Stats() = %+v, want %+v", i+1, got, want)
		}
	}
	if v, ok := c.Get(k); !ok || v != 7 {
		t.Errorf("Get = %d, %v, want 7, true", v, ok)
	}
}

// A nil cache caches nothing and does not fail.
func TestNil(t *testing.T) {
	c := New[int](0)
	if c != nil {
		t.Fatalf("New(0) = %v, want nil", c)
	}
	k := c.Key("x")
	c.Put(k, 1)
	c.Put(k, 1)
	if _, ok := c.Get(k); ok {
		t.Error("Get on a nil cache hit")
	}
	if st := c.Stats(); st != (Stats{}) {
		t.Errorf("Stats() = %+v, want zero", st)
	}
}

// Texts that never repeat evict nothing: after a flood of 100,000 unique
// texts into a cache of 1,024 slots, every repeated text that hit before
// it still hits.
func TestUniqueFloodKeepsRepeats(t *testing.T) {
	c := New[int](1024)
	hot := texts(40)
	lookup := func(msg string) {
		k := c.Key(msg)
		if _, ok := c.Get(k); !ok {
			c.Put(k, len(msg))
		}
	}
	pass := func() uint64 {
		before := c.Stats().Hits
		for _, msg := range hot {
			lookup(msg)
		}
		return c.Stats().Hits - before
	}
	for range 3 {
		pass()
	}
	warm := pass()
	if warm < uint64(len(hot))*9/10 {
		t.Fatalf("before the flood: %d of %d repeated texts hit, want at least %d", warm, len(hot), len(hot)*9/10)
	}
	for i := range 100_000 {
		lookup(fmt.Sprintf("Your code is %06d, valid 5 minutes 🔐", i))
	}
	if got := pass(); got != warm {
		t.Errorf("after the flood: %d of %d repeated texts hit, want %d as before it", got, len(hot), warm)
	}
}

// Texts replayed in a fixed cycle (a benchmark's mix) are all admitted,
// though they alternate.
func TestCycleAdmitted(t *testing.T) {
	c := New[int](8192)
	ts := texts(600)
	for range 4 {
		for _, msg := range ts {
			k := c.Key(msg)
			if _, ok := c.Get(k); !ok {
				c.Put(k, 1)
			}
		}
	}
	before := c.Stats().Hits
	for _, msg := range ts {
		c.Get(c.Key(msg))
	}
	if hits := c.Stats().Hits - before; hits < uint64(len(ts))*99/100 {
		t.Errorf("after 4 cycles: %d of %d texts hit, want at least 99 %%", hits, len(ts))
	}
}

// Key, Get and Put allocate nothing.
func TestAllocations(t *testing.T) {
	c := New[[16]byte](1024)
	ts := texts(500)
	i := 0
	if got := testing.AllocsPerRun(1000, func() {
		k := c.Key(ts[i%len(ts)])
		if _, ok := c.Get(k); !ok {
			c.Put(k, [16]byte{1})
		}
		i++
	}); got != 0 {
		t.Errorf("Key, Get, Put = %.1f allocations, want 0", got)
	}
}
