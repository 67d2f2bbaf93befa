package risk

import (
	"fmt"
	"sync"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/textcache"
)

func modelScanner(t testing.TB, cacheSize int) *Scanner {
	t.Helper()
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Model: m, CacheSize: cacheSize})
}

// cacheTexts is multilingual: the scripts the normaliser treats apart,
// combining marks, emoji, links, and texts that differ in one digit or in
// case only (which the cache must keep apart: they can score apart).
func cacheTexts(n int) []string {
	base := append([]string{
		"Your verification code is 482913. It expires in 10 minutes.",
		"Your verification code is 482914. It expires in 10 minutes.",
		"YOUR VERIFICATION CODE IS 482913. IT EXPIRES IN 10 MINUTES.",
		"Flash SALE!!! 50% off everything, use code SAVE50 at https://bit.ly/x",
		"आपका ऑर्डर 7712 भेज दिया गया है। धन्यवाद!", "Kargonuz yola çıktı, takip no 55123 🚚",
		"عرض خاص! خصم ٥٠٪ على كل المنتجات اليوم فقط", "Cafe\u0301 ouvert demain, re\u0301servez 🙏",
	}, multilingual...)
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		for _, b := range base {
			if len(out) == n {
				break
			}
			if i == 0 {
				out = append(out, b)
			} else {
				out = append(out, fmt.Sprintf("%s #%d", b, i))
			}
		}
	}
	return out
}

// A cached Scanner answers exactly what an uncached one does: from 16
// goroutines, on multilingual texts, with a cache far smaller than the
// texts (slots replaced all the time) and with one that holds them all.
func TestScanCacheSameSignals(t *testing.T) {
	plain := modelScanner(t, 0)
	texts := cacheTexts(600)
	want := make([]Signals, len(texts))
	for i, msg := range texts {
		want[i] = plain.Scan(msg)
	}
	if want[0] == want[1] && want[0] == want[2] {
		t.Log("texts 0-2 score alike; the test still checks every text")
	}
	for _, size := range []int{1, 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := modelScanner(t, size)
			var wg sync.WaitGroup
			errs := make(chan string, 16)
			for g := range 16 {
				wg.Go(func() {
					for r := range 3 * len(texts) {
						i := (g*37 + r*7) % len(texts)
						if got := s.Scan(texts[i]); got != want[i] {
							select {
							case errs <- fmt.Sprintf("Scan(%q) = %+v, want %+v", texts[i], got, want[i]):
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
			if st := s.CacheStats(); st.Hits == 0 {
				t.Errorf("CacheStats() = %+v after %d scans of %d texts, want hits", st, 16*3*len(texts), len(texts))
			}
		})
	}
}

// A message is cached the second time it is seen and answered from the
// cache the third.
func TestScanCacheAdmitsOnSecondSight(t *testing.T) {
	s := modelScanner(t, 256)
	msg := "تم شحن طلبك رقم 5521 وسيصل غدا 📦"
	for i, want := range []textcache.Stats{{Misses: 1}, {Misses: 2}, {Hits: 1, Misses: 2}, {Hits: 2, Misses: 2}} {
		s.Scan(msg)
		got := s.CacheStats()
		got.Size = 0
		if got != want {
			t.Errorf("after Scan #%d: CacheStats() = %+v, want %+v", i+1, got, want)
		}
	}
	if st := s.CacheStats(); st.Size != 256 {
		t.Errorf("CacheStats().Size = %d, want 256", st.Size)
	}
	if st := New(Options{}).CacheStats(); st != (textcache.Stats{}) {
		t.Errorf("CacheStats() without a cache = %+v, want zero", st)
	}
}

// A hit allocates nothing; a miss allocates what scanning does, nothing
// more.
func TestScanCacheAllocations(t *testing.T) {
	plain, cached := modelScanner(t, 0), modelScanner(t, 1024)
	msg := "Kargonuz yola çıktı, takip no 55123 🚚"
	cached.Scan(msg)
	cached.Scan(msg)
	if got := testing.AllocsPerRun(100, func() { cached.Scan(msg) }); got != 0 {
		t.Errorf("Scan(%q) from the cache = %.0f allocations, want 0", msg, got)
	}
	texts := cacheTexts(2000)
	i := 0
	miss := testing.AllocsPerRun(500, func() { cached.Scan(texts[i%len(texts)] + " x"); i++ })
	i = 0
	scan := testing.AllocsPerRun(500, func() { plain.Scan(texts[i%len(texts)] + " x"); i++ })
	limit := scan
	if raceEnabled {
		limit++ // sync.Pool's random drops
	}
	if miss > limit {
		t.Errorf("Scan of first-seen texts with a cache = %.1f allocations, without = %.1f, want no more", miss, scan)
	}
}

func BenchmarkScanCache(b *testing.B) {
	texts := cacheTexts(1000)
	for _, bc := range []struct {
		name string
		size int
		next func(i int) string
	}{
		{"hit", 4096, func(i int) string { return texts[i%len(texts)] }},
		{"unique", 4096, func(i int) string { return fmt.Sprintf("%s %d", texts[i%len(texts)], i) }},
		{"unique-nocache", 0, func(i int) string { return fmt.Sprintf("%s %d", texts[i%len(texts)], i) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := modelScanner(b, bc.size)
			for i := range 4 * len(texts) {
				s.Scan(bc.next(i))
			}
			b.ReportAllocs()
			before := s.CacheStats()
			i := 0
			for b.Loop() {
				s.Scan(bc.next(i))
				i++
			}
			if after := s.CacheStats(); bc.size > 0 {
				b.ReportMetric(float64(after.Hits-before.Hits)/float64(i)*100, "%hits")
			}
		})
	}
}
