package optout

import (
	"sync"
	"testing"
	"unicode/utf8"
)

func TestLookalikes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"get 50 off all sneakers", "get 50 off all sneakers"},
		{"promoción válida até domingo", "promocion valida ate domingo"},
		{"ǵét́ 50 óf̃f̈", "get 50 off"},                        // a mark on every letter
		{"gеt 50 оff аll snеаkеrs", "get 50 off all sneakers"}, // Cyrillic а е о in Latin words
		{"gεt 50 οff", "get 50 off"},                           // Greek
		{"ѕаӏе 50 off today", "sale 50 off today"},             // a word of Cyrillic lookalikes in a Latin text
		{"скидкa 50 на всё", "скидка 50 на все"},               // a Latin a in a Cyrillic word; ё loses its marks
		{"мой заказ уже в пути", "мой заказ уже в пути"},       // й stays
		{"сухо и тепло", "сухо и тепло"},                       // a Cyrillic text keeps its words
		{"çok güzel teşekkürler", "cok guzel tesekkurler"},     // Turkish
		{"आपका ऑर्डर भेज दिया गया है", "आपका ऑर्डर भेज दिया गया है"}, // Devanagari keeps its marks
		{"تم شحن طلبك", "تم شحن طلبك"}, // Arabic
		{"ok спасибо", "ok спасибо"},   // one word per script, none mixed
		{"", ""},
	} {
		n := Normalize(tc.in)
		if got := Lookalikes(n); got != tc.want {
			t.Errorf("Lookalikes(%q) = %q, want %q", n, got, tc.want)
		}
		if got := Lookalikes(Lookalikes(n)); got != Lookalikes(n) {
			t.Errorf("Lookalikes is not idempotent on %q: %q, then %q", n, Lookalikes(n), got)
		}
	}
}

// Text Lookalikes cannot change (ASCII, Arabic, Devanagari) costs no
// allocation: most of what the detectors read.
func TestLookalikesAllocations(t *testing.T) {
	for _, s := range []string{"your order 4412 has shipped", "تم شحن طلبك رقم 5521", "आपका ऑर्डर भेज दिया गया है"} {
		if n := testing.AllocsPerRun(100, func() { Lookalikes(s) }); n != 0 {
			t.Errorf("Lookalikes(%q) allocates %v times, want 0", s, n)
		}
	}
}

func TestLookalikesConcurrent(t *testing.T) {
	in := []string{"gеt 50 оff аll snеаkеrs", "скидкa 50 на всё", "promoción válida", "आपका ऑर्डर", "تم شحن طلبك 🎉", "ǵét́ óf̃f̈"}
	want := make([]string, len(in))
	for i, s := range in {
		want[i] = Lookalikes(Normalize(s))
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for k := range 200 {
				i := (g + k) % len(in)
				if got := Lookalikes(Normalize(in[i])); got != want[i] {
					t.Errorf("Lookalikes(%q) = %q concurrently, want %q", in[i], got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzLookalikes(f *testing.F) {
	for _, s := range []string{"gеt 50 оff", "скидкa", "ǵét́", "sale", "ѕаӏе", "αβγ abc", "й", "e\u0301\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		got := Lookalikes(n)
		if !utf8.ValidString(got) {
			t.Fatalf("Lookalikes(%q) = %q, not UTF-8", n, got)
		}
		if again := Lookalikes(got); again != got {
			t.Fatalf("Lookalikes is not idempotent on %q: %q, then %q", n, got, again)
		}
	})
}
