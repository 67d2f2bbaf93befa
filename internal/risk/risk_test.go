package risk

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScan(t *testing.T) {
	s := New(Options{})
	tests := []struct {
		msg  string
		want Signals
	}{
		{"Your order #2041 has been shipped.", Signals{Transactional: 2, CapsRatioPct: 4, Length: 34}},
		{"WIN BIG!!! 50% OFF everything today only, use code SAVE50 at bit.ly/deal",
			Signals{PromoTerms: 2, DiscountCodes: 2, Percentages: 1, PrizeClaims: 1, ShortenerLinks: 1, Links: 1, CapsRatioPct: 26, Exclamations: 3, Length: 72}},
		// Words on boundaries only: "window" is not "win", "sale" not in "wholesale".
		{"Open the window, please, wholesale", Signals{CapsRatioPct: 3, Length: 34}},
		// A URL's words are not the message's: no "deal" from the link.
		{"See https://example.com/deal/1 for details", Signals{Links: 1, CapsRatioPct: 3, Length: 42}},
		{"خصم كبير 🎉", Signals{PromoTerms: 1, Emoji: 1, Length: 10}},
		// Accents and case do not matter.
		{"PROMOCIÓN y promocion", Signals{PromoTerms: 2, CapsRatioPct: 47, Length: 21}},
		{"Your verification code is 482913", Signals{Transactional: 2, CapsRatioPct: 4, Length: 32}},
		{"رمز التحقق ٤٨٢٩١٣", Signals{Transactional: 2, Length: 17}},
		{"Vote for Ahmed on Tuesday", Signals{Political: 2, CapsRatioPct: 14, Length: 25}},
		{"We help businesses grow. Are you interested in a quick call?", Signals{ColdOutreach: 3, CapsRatioPct: 4, Length: 60}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, s.Scan(tc.msg)); diff != "" {
			t.Errorf("Scan(%q) mismatch (-want +got):\n%s", tc.msg, diff)
		}
	}
}

func TestVocabularyIsDataAndExtends(t *testing.T) {
	v := DefaultVocabulary()
	if len(v.Promo) < 50 || len(v.Prize) < 20 || len(v.Political) < 20 {
		t.Fatalf("built-in vocabulary looks empty: %d promo", len(v.Promo))
	}
	extra := v.Merge(Vocabulary{Promo: []string{"Mega Bonanza"}})
	if got := New(Options{Vocabulary: &extra}).Scan("mega bonanza!"); got.PromoTerms != 1 {
		t.Errorf("an added term did not match: %+v", got)
	}
	if got := New(Options{}).Scan("mega bonanza!"); got.PromoTerms != 0 {
		t.Errorf("matched before it was added: %+v", got)
	}
}

func BenchmarkScan(b *testing.B) {
	s := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		s.Scan("Your order #2041 has been shipped and will arrive on Tuesday.")
	}
}
