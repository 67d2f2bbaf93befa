package model_test

import (
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/model/modeltest"
	"github.com/sendguard/sendguard/internal/optout"
)

// oddTexts are inputs at the edges of the normaliser and the extraction.
var oddTexts = []string{
	"", " ", "\x00", "\xff", "a\xffb \xfe\xfd", "\xe2\x80", "STOP", "S T O P", "s t o p please", "ＳＴＯＰ", "don't", "don’t stop", "a''b",
	"لو سمحت وقفوا الرسايل ما ابغى اشتراك", "أوقف الرسائل ـــ من فضلك", "مَرْحَبًا", "١٢٣ ۴۵۶", "ا\u0654",
	"आपका ऑर्डर 4412 भेज दिया गया है। अगली खरीद पर 20% छूट", "ज़रूर", "ज\u093Cरूर", "ন্যায়", "வணக்கம்", "മലയാളം",
	"İSTANBUL'DA İndirim ÇIK ıi", "Iı İi", "Straße GROSS ß", "ﬁnance", "Ⅻ ① ㎏", "ПРЕКРАТИТЕ рассылку", "ΣΊΣΥΦΟΣ ς",
	"ѕаvе скидкa", "promoción ñandú", "s̈ȁl̃ë", "e\u0301\u0301", "a\u0316\u0301\u0300", "d1sc0unt pr0ducts fr33",
	"emoji 😀👍🏽 👨‍👩‍👧 🇦🇪", "a\u200db", "\ufeffBOM", "\u202eRTL\u202c", "가각 \u1100\u1161\u11a8", "日本語 ｶﾀｶﾅ",
	"don't not never stop no", "لا لا تتوقف", "not " + strings.Repeat("stop ", 40),
	strings.Repeat("وقف الرسائل ", 300), strings.Repeat("Flash sale! 50% off 🎉 ", 300), strings.Repeat("é", 3000),
}

// Predict, the fast path, gives the reference's probabilities (Predict
// before it, RefPredict) bit for bit, float64 equality, for both shipped
// models on every message of the corpus and on odd text, from 8
// goroutines at once; so does PredictNormalized. Under the race detector
// every 16th corpus message.
func TestFastPathMatchesReference(t *testing.T) {
	for _, task := range []string{model.Inbound, model.Outbound} {
		t.Run(task, func(t *testing.T) {
			m, err := model.Embedded(task)
			if err != nil {
				t.Fatal(err)
			}
			texts := append([]string(nil), oddTexts...)
			step := 1
			if model.RaceEnabled {
				step = 16
			}
			for i, e := range modeltest.Corpus(t, task) {
				if i%step == 0 {
					texts = append(texts, e.Text)
				}
			}
			want := make([][]float64, len(texts))
			for i, s := range texts {
				want[i] = m.RefPredict(s, nil)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					buf := make([]float64, 0, model.MaxClasses)
					bad := 0
					for i := g; i < len(texts) && bad < 5; i += 8 {
						got := m.Predict(texts[i], buf[:0])
						if !equalBits(got, want[i]) {
							t.Errorf("Predict(%q) = %v, want %v (reference)", texts[i], got, want[i])
							bad++
						}
						if got := m.PredictNormalized(optout.Normalize(texts[i]), buf[:0]); !equalBits(got, want[i]) {
							t.Errorf("PredictNormalized(Normalize(%q)) = %v, want %v (reference)", texts[i], got, want[i])
							bad++
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func equalBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}
