package phone

import (
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/unicode/runenames"
)

func TestE164(t *testing.T) {
	n, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"+966501234567", "+966501234567", true},
		{"+966 50 123 4567", "+966501234567", true},
		{"00966501234567", "+966501234567", true},
		{"+٩٦٦٥٠١٢٣٤٥٦٧", "+966501234567", true},
		{"+۹۶۶۵۰۱۲۳۴۵۶۷", "+966501234567", true},
		{"+1 (415) 555-2671", "+14155552671", true},
		{"+44 20 7946 0958", "+442079460958", true},
		{"0501234567", "", false}, // national format without a default region
		{"+9665XXXXXXX", "", false},
		{"hello", "", false},
		{"+1", "", false},
		{"", "", false},
	}
	for range 2 { // the second pass is served from the cache
		for _, tc := range tests {
			got, ok := n.E164(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("E164(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		}
		n.cache.Wait()
	}
}

func TestDefaultRegion(t *testing.T) {
	n, err := New(Options{DefaultRegion: "sa", CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := n.E164("050 123 4567"); !ok || got != "+966501234567" {
		t.Errorf("E164(050 123 4567) with region SA = %q, %v", got, ok)
	}
}

func BenchmarkE164Cached(b *testing.B) {
	n, _ := New(Options{})
	n.E164("+966501234567")
	n.cache.Wait()
	b.ReportAllocs()
	for b.Loop() {
		n.E164("+966501234567")
	}
}

func BenchmarkE164Parse(b *testing.B) {
	n, _ := New(Options{CacheSize: -1})
	b.ReportAllocs()
	for b.Loop() {
		n.E164("+966501234567")
	}
}

func TestPlain(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"+966501234567", true},
		{"+966 50 123 4567", true},
		{" +966 50 123 4567 ", true},
		{"00966501234567", true},
		{"+1 (415) 555-2671", true},
		{"+1.415.555.2671", true},
		{"0501234567", true},
		{"+٩٦٦٥٠١٢٣٤٥٦٧", true},
		{"+۹۶۶۵۰۱۲۳۴۵۶۷", true},
		{"+９６６５０１２３４５６７", true}, // full-width digits: one script
		{"+𝟗𝟔𝟔𝟓𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕", true}, // mathematical bold digits: one script

		{"", false},
		{"   ", false},
		{"+", false},
		{"++966501234567", false},
		{"966+501234567", false},
		{"+966 ٥٠١٢٣٤٥٦٧", false}, // ASCII mixed with Arabic-Indic
		{"+٩٦٦۵۰۱۲۳۴۵۶۷", false},  // Arabic-Indic mixed with Persian
		{"+𝟗𝟔𝟔𝟓𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟘", false}, // bold mixed with double-struck
		{"+966501234567;ext=123", false},
		{"+966501234567 ext. 123", false},
		{"+966501234567x123", false},
		{"+966501234567#123", false},
		{"tel:+966501234567", false},
		{"1-800-FLOWERS", false},
		{"+1-800-FLOWERS", false},
		{"+966501234567\x00", false},
		{"+966\t501234567", false},
		{"+966\n501234567", false},
		{"\u200e+966501234567", false}, // left-to-right mark
		{"\u200f+966501234567", false}, // right-to-left mark
		{"+966\u202a501234567", false}, // LRE
		{"+966\u202e501234567", false}, // RLO
		{"+966\u2066501234567\u2069", false},
		{"+966\u200b501234567", false}, // zero-width space
		{"+966\u200d501234567", false}, // zero-width joiner
		{"+966\u2060501234567", false}, // word joiner
		{"\ufeff+966501234567", false}, // BOM
		{"+966\u00a0501234567", false}, // no-break space
		{"＋966501234567", false},       // full-width plus
		{"+966/501234567", false},
		{"+966\ufffd501234567", false},
		{"+966\xff501234567", false}, // invalid UTF-8
	}
	for _, tc := range tests {
		if got := Plain(tc.in); got != tc.want {
			t.Errorf("Plain(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestDigitValue checks digitValue against the Unicode character names for
// every decimal digit: "… DIGIT SEVEN" has the value 7. Before the fix the
// mathematical digits after the first set (one Nd range of fifty) all read
// as 0.
func TestDigitValue(t *testing.T) {
	names := []string{"ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"}
	n := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.IsDigit(r) {
			continue
		}
		n++
		v, ok := digitValue(r)
		name := runenames.Name(r)
		if !ok || !strings.HasSuffix(name, " "+names[v]) {
			t.Errorf("digitValue(%U %s) = %d, %v", r, name, v, ok)
		}
	}
	if n < 600 {
		t.Errorf("only %d decimal digits seen", n)
	}
}

func TestE164OfOtherDigitSets(t *testing.T) {
	n, err := New(Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"+９６６５０１２３４５６７", "+𝟗𝟔𝟔𝟓𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕", "+𝟡𝟞𝟞𝟝𝟘𝟙𝟚𝟛𝟜𝟝𝟞𝟟", "+٩٦٦٥٠١٢٣٤٥٦٧"} {
		if got, ok := n.E164(in); !ok || got != "+966501234567" {
			t.Errorf("E164(%q) = %q, %v; want +966501234567", in, got, ok)
		}
	}
}
