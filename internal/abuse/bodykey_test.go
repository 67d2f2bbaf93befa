package abuse

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/sendguard/sendguard/internal/optout"
)

// bodyKeyWords is BodyKey as it was before its single pass: a slice of
// words, a rune slice and a builder per word, then a join. BodyKey must
// give the same key for every text (the Redis store keeps fan-out counts
// under these keys, shared by replicas that may run either version).
func bodyKeyWords(msg string) [16]byte {
	words := strings.Fields(msg)
	for i, w := range words {
		r := []rune(w)
		if i > 0 && len(r) > 0 && unicode.IsUpper(r[0]) {
			words[i] = "@"
			continue
		}
		var b strings.Builder
		inDigits := false
		for _, r := range w {
			if unicode.IsDigit(r) {
				if !inDigits {
					b.WriteByte('#')
				}
				inDigits = true
				continue
			}
			inDigits = false
			b.WriteRune(r)
		}
		words[i] = b.String()
	}
	sum := sha256.Sum256([]byte(optout.Normalize(strings.Join(words, " "))))
	var k [16]byte
	copy(k[:], sum[:])
	return k
}

// bodyTexts are multilingual sends: Arabic with Arabic-Indic digits and
// diacritics, Hindi with Devanagari digits, Turkish İ, emoji with skin
// tones, combining marks, Unicode spaces, invalid UTF-8.
var bodyTexts = []string{
	"",
	" ",
	"Hi Sara, your order 1234 has shipped",
	"📦 Your parcel #100042 is out for delivery today ✅",
	"فاتورتك رقم INV-100043 جاهزة للتنزيل من صفحة حسابك.",
	"تم شحن طلبك رقم ١٢٣٤٥ وسيصل خلال يومين. شُكراً لك.",
	"आपका भुगतान ₹१२०० प्राप्त हो गया है। धन्यवाद 🙏",
	"✅ Ödemeniz alındı: 100045 TL. Teşekkür ederiz 🙏 İstanbul",
	"Merhaba Emre, destek talebiniz #100046 güncellendi.",
	"Café reçu n° 100047: merci ! e\u0301te\u0301 👍🏽",
	"a\u00a0B\u2003C\u3000d\te\nF\r\ng\u0085H",
	"12 34\u00a0٥٦ x9y8z 007Bond",
	"\xff\xfe bad \xc3( UTF-8 \xe2\x82",
	"ǅemal Ǆ ᾈ title-case Ⅻ roman",
	"ارسل STOP لإيقاف الرسائل Ali",
}

func TestBodyKeyUnchanged(t *testing.T) {
	for _, s := range bodyTexts {
		if got, want := BodyKey(s), bodyKeyWords(s); got != want {
			t.Errorf("BodyKey(%q) = %x, want %x (the word-by-word key)", s, got, want)
		}
	}
}

// TestBodyKeyConcurrent keys the texts from 16 goroutines at once (BodyKey
// keeps no state between calls; -race checks it).
func TestBodyKeyConcurrent(t *testing.T) {
	want := make([][16]byte, len(bodyTexts))
	for i, s := range bodyTexts {
		want[i] = bodyKeyWords(s)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for n := range 50 {
				i := (g + n) % len(bodyTexts)
				if got := BodyKey(bodyTexts[i]); got != want[i] {
					t.Errorf("BodyKey(%q) = %x, want %x", bodyTexts[i], got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzBodyKey(f *testing.F) {
	for _, s := range bodyTexts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := BodyKey(s), bodyKeyWords(s); got != want {
			t.Errorf("BodyKey(%q) = %x, want %x", s, got, want)
		}
	})
}

func BenchmarkBodyKey(b *testing.B) {
	for _, tc := range []struct {
		name string
		key  func(string) [16]byte
	}{{"single-pass", BodyKey}, {"words", bodyKeyWords}} {
		b.Run(tc.name, func(b *testing.B) {
			texts := make([]string, 600)
			for i := range texts {
				texts[i] = fmt.Sprint(bodyTexts[3+i%7], " ", 100000+i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tc.key(texts[i%len(texts)])
				i++
			}
		})
	}
}
