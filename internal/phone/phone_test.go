package phone

import "testing"

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
