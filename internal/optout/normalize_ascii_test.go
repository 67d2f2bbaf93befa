package optout

import "testing"

func TestNormalizeASCII(t *testing.T) {
	for _, s := range []string{"", " ", "STOP!", "don't STOP", "'quoted' text", "a''b", "a\x00'b", "x'\x00y", "tab\tand\nnewline",
		"Order #4412: 50% OFF!!!", "e-mail me@x.com", "  lead and trail  ", "it's", "'", "a'", "'a", "1'2", "_under_score_", "\x00\x00"} {
		if got, want := string(appendASCII(nil, s)), normalize(s); got != want {
			t.Errorf("appendASCII(%q) = %q, normalize = %q", s, got, want)
		}
	}
}

func FuzzNormalizeASCII(f *testing.F) {
	for _, s := range []string{"STOP!", "don't", "a''b", "a\x00'b", "x y  z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !isASCII(s) {
			return
		}
		if got, want := string(appendASCII(nil, s)), normalize(s); got != want {
			t.Fatalf("appendASCII(%q) = %q, normalize = %q", s, got, want)
		}
	})
}
