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
		{"Your order #2041 has been shipped.", Signals{CapsRatioPct: 4, Length: 34}},
		{"WIN BIG!!! 50% OFF everything today only, use code SAVE50 at bit.ly/deal",
			Signals{PromoTerms: 5, ShortenerLinks: 1, Links: 1, CapsRatioPct: 26, Exclamations: 3, Length: 72}},
		{"Open the window, please", Signals{CapsRatioPct: 5, Length: 23}},
		{"See https://example.com/track/1 for tracking", Signals{Links: 1, CapsRatioPct: 2, Length: 44}},
		{"خصم كبير 🎉", Signals{PromoTerms: 1, Emoji: 1, Length: 10}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, s.Scan(tc.msg)); diff != "" {
			t.Errorf("Scan(%q) mismatch (-want +got):\n%s", tc.msg, diff)
		}
	}
}

func BenchmarkScan(b *testing.B) {
	s := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		s.Scan("Your order #2041 has been shipped and will arrive on Tuesday.")
	}
}
